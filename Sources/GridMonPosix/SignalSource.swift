import CGridMonPosix
import Glibc

/// Signals read on a reactor like any descriptor, instead of by signal handlers.
///
/// `init` blocks the signals in the calling thread and opens a signalfd for them; threads
/// started afterwards inherit the mask, so make it before any other thread starts. Register
/// it on a reactor: `handleEvents` reads every pending record on the reactor's thread and
/// calls `onSignal` with each signal's number. A signal whose disposition is SIG_IGN (a
/// non-interactive shell's background job gets SIGINT so) is discarded by the kernel and never
/// arrives. Owns `fd` for the process's life.
/// - Throws: `SyscallError` from `init` when the signalfd cannot be made.
public final class SignalSource: EventHandler {
    public let fd: Int32
    private let onSignal: (Int32) -> Void

    public init(_ signals: [Int32], onSignal: @escaping (Int32) -> Void) throws(SyscallError) {
        var mask = sigset_t()
        sigemptyset(&mask)
        for signal in signals { sigaddset(&mask, signal) }
        pthread_sigmask(SIG_BLOCK, &mask, nil)
        fd = try syscallChecked("signalfd") { signalfd(-1, &mask, Int32(SFD_NONBLOCK | SFD_CLOEXEC)) }
        self.onSignal = onSignal
    }

    public func handleEvents(_ events: IOEvents) {
        var info = signalfd_siginfo()
        while read(fd, &info, MemoryLayout<signalfd_siginfo>.size) == MemoryLayout<signalfd_siginfo>.size {
            onSignal(Int32(info.ssi_signo))
        }
    }
}
