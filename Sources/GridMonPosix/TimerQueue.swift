/// Timers ordered by deadline: a binary min-heap, so scheduling and firing are O(log n) and
/// a server with tens of thousands of connection timeouts needs no thread per timer.
///
/// Pure: deadlines are plain nanosecond numbers from whatever clock the owner uses.
/// Cancelling is O(1): the entry stays in the heap and is skipped when it comes due.
/// Ownership and threading: owned by one reactor; not thread-safe.
public struct TimerQueue<Action> {
    public struct ID: Hashable, Sendable {
        let value: UInt64
    }

    private struct Entry {
        let deadline: UInt64
        let id: UInt64
    }

    private var heap: [Entry] = []
    private var actions: [UInt64: Action] = [:]
    private var nextID: UInt64 = 1

    public init() {}

    /// Number of live (not cancelled, not fired) timers.
    public var count: Int { actions.count }

    /// Adds a timer due at `deadline`.
    @discardableResult
    public mutating func schedule(at deadline: UInt64, _ action: Action) -> ID {
        let id = nextID
        nextID += 1
        actions[id] = action
        heap.append(Entry(deadline: deadline, id: id))
        siftUp(heap.count - 1)
        return ID(value: id)
    }

    /// Cancels a timer; cancelling one that fired or was cancelled already does nothing.
    public mutating func cancel(_ id: ID) {
        actions[id.value] = nil
    }

    /// The earliest live deadline, if any.
    public mutating func nextDeadline() -> UInt64? {
        dropCancelled()
        return heap.first?.deadline
    }

    /// Removes and returns the actions due at or before `now`, earliest first.
    public mutating func popDue(now: UInt64) -> [Action] {
        var due: [Action] = []
        while true {
            dropCancelled()
            guard let first = heap.first, first.deadline <= now else { return due }
            removeFirst()
            if let action = actions.removeValue(forKey: first.id) { due.append(action) }
        }
    }

    private mutating func dropCancelled() {
        while let first = heap.first, actions[first.id] == nil { removeFirst() }
    }

    private mutating func removeFirst() {
        let last = heap.removeLast()
        if !heap.isEmpty {
            heap[0] = last
            siftDown(0)
        }
    }

    private func less(_ a: Int, _ b: Int) -> Bool {
        heap[a].deadline < heap[b].deadline || (heap[a].deadline == heap[b].deadline && heap[a].id < heap[b].id)
    }

    private mutating func siftUp(_ index: Int) {
        var child = index
        while child > 0 {
            let parent = (child - 1) / 2
            guard less(child, parent) else { return }
            heap.swapAt(child, parent)
            child = parent
        }
    }

    private mutating func siftDown(_ index: Int) {
        var parent = index
        while true {
            let left = 2 * parent + 1
            let right = left + 1
            var smallest = parent
            if left < heap.count && less(left, smallest) { smallest = left }
            if right < heap.count && less(right, smallest) { smallest = right }
            if smallest == parent { return }
            heap.swapAt(parent, smallest)
            parent = smallest
        }
    }
}
