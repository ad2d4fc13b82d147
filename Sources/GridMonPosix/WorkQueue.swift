import Synchronization
import GridMonCore

/// A bounded queue of jobs and the one thread that runs them in order (the per-node model
/// trainers). `submit` never blocks: past `capacity` queued jobs it refuses, and the caller
/// counts and retries. `stop` lets the job in hand finish, drops the rest, and joins.
///
/// Threading: `submit` from any thread; `work` runs on the queue's own thread only.
public final class WorkQueue<Job: Sendable>: @unchecked Sendable {  // `thread` is touched by start/stop only
    public let capacity: Int
    private let work: @Sendable (Job) -> Void
    private let queue: Mutex<(jobs: BoundedFIFO<Job>, stopped: Bool)>
    private let wake = Semaphore()
    private var thread: PosixThread?

    public init(capacity: Int, work: @escaping @Sendable (Job) -> Void) {
        self.capacity = max(1, capacity)
        self.work = work
        queue = Mutex((BoundedFIFO(capacity: self.capacity), false))
    }

    /// Starts the thread.
    public func start() {
        guard thread == nil else { return }
        thread = PosixThread { [self] in loop() }
    }

    /// Stops after the job in hand.
    public func stop() {
        guard let thread else { return }
        queue.withLock { $0.stopped = true }
        wake.signal()
        thread.join()
        self.thread = nil
    }

    /// Queues `job`; false when the queue is full or stopped (nothing queued).
    public func submit(_ job: Job) -> Bool {
        let accepted = queue.withLock { q -> Bool in
            guard !q.stopped else { return false }
            return q.jobs.append(job)
        }
        if accepted { wake.signal() }
        return accepted
    }

    private func loop() {
        while true {
            // One take per job; an empty queue means wait (issue #11: this loop was a `Job??`
            // whose empty case read as `.some(nil)` and ended the thread after its first batch).
            let (job, stopped) = queue.withLock { q -> (Job?, Bool) in
                if q.stopped { return (nil, true) }
                return (q.jobs.popFirst(), false)
            }
            if stopped { return }
            guard let job else {
                wake.wait()
                continue
            }
            work(job)
        }
    }
}
