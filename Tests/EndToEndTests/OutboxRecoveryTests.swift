import Foundation
import Glibc
import GridMonWire
import Testing

/// Issue #18, item 4: what recovery keeps is fsynced before it is announced as durable.
///
/// A crash can leave records written but not yet `fdatasync`ed (still dirty in the page
/// cache); a power loss right after the restart would take them, so the server must not tell
/// agents (`Welcome.durable_seq`) they may drop them before syncing. The test makes exactly
/// that state — a segment's pages dirty, its content intact — and asks the kernel
/// (`cachestat(2)`, Linux 6.5+, through Python's ctypes) how many pages are still dirty once
/// the restarted server has welcomed the node.
@Suite(.serialized) struct OutboxRecoveryTests {
    /// `python3 -c SCRIPT redirty|dirty PATH`: rewrites the file in place without syncing
    /// (redirty), then prints its dirty plus under-writeback pages; exit 77 without cachestat.
    private static let script = """
        import ctypes, os, sys
        libc = ctypes.CDLL(None, use_errno=True)
        class Range(ctypes.Structure): _fields_ = [("off", ctypes.c_uint64), ("len", ctypes.c_uint64)]
        class Stat(ctypes.Structure): _fields_ = [(n, ctypes.c_uint64) for n in ("cache", "dirty", "writeback", "evicted", "recent")]
        mode, path = sys.argv[1], sys.argv[2]
        if mode == "redirty":
            with open(path, "r+b") as f:
                data = f.read(); f.seek(0); f.write(data)
        fd = os.open(path, os.O_RDONLY)
        r, s = Range(0, 0), Stat()
        if libc.syscall(451, fd, ctypes.byref(r), ctypes.byref(s), 0) != 0: sys.exit(77)
        print(s.dirty + s.writeback)
        """

    /// Dirty pages of `path` (after rewriting it, with `redirty`); nil without cachestat.
    private func dirtyPages(_ path: String, redirty: Bool = false) throws -> Int? {
        let result = try runTool("/usr/bin/python3", ["-c", Self.script, redirty ? "redirty" : "dirty", path])
        guard result.status == 0 else { return nil }
        return Int(result.output.trimmingCharacters(in: .whitespacesAndNewlines))
    }

    @Test func recoveredSegmentsAreSyncedBeforeTheirSamplesAreAnnouncedDurable() throws {
        let dir = tempPath("recovery-sync")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        do {
            let server = try ServerProcess(["--insecure-no-auth"], dataDir: dir)
            let client = try TestClient(server.address)
            _ = try client.hello(node: "power", stream: 1)
            try client.send(batch(1, 1...300))
            #expect(try ackedThrough(client, 300) == 300)
            #expect(server.stop(signal: SIGKILL) == SIGKILL)
        }
        let segments = try FileManager.default.contentsOfDirectory(atPath: dir).filter { $0.hasSuffix(".seg") }
        let segment = dir + "/" + (try #require(segments.sorted().last))
        // The state a crash leaves: the content is whole, the pages are not on disk yet.
        guard let before = try dirtyPages(segment, redirty: true) else {
            print("cachestat(2) is not available here; the recovery sync is not checked")
            return
        }
        try #require(before > 0, "rewriting the segment left no dirty page (writeback ran already?)")
        let server = try ServerProcess(["--insecure-no-auth"], dataDir: dir)
        let client = try TestClient(server.address)
        #expect(try client.hello(node: "power", stream: 1).durableSeq == 300)
        // Dirty pages are written back after 30 s (vm.dirty_expire_centisecs) unless synced.
        let after = try #require(try dirtyPages(segment))
        print("recovered segment: \(before) dirty pages before the restart, \(after) once durable_seq was announced")
        #expect(after == 0, "durable_seq announced while the recovered segment was still dirty in the page cache")
    }
}
