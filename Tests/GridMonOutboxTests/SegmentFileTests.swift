import Foundation
import Glibc
import Testing
@testable import GridMonOutbox

/// A segment file's zeros laid down ahead on a real, small file system (a tmpfs the test
/// mounts; root only, as CI runs).
@Suite struct SegmentFileTests {
    private func fileSize(_ path: String) -> Int {
        var info = stat()
        return stat(path, &info) == 0 ? Int(info.st_size) : -1
    }

    private func record(_ byte: UInt8) -> [UInt8] { [UInt8](repeating: byte, count: 1000) }

    @Test(.enabled(if: getuid() == 0, "mounting a tmpfs needs root"))
    func zerosThatDoNotFitAreGivenUpForTheSegmentAndItsRecordsGoOnWithoutThem() throws {
        let mount = FileManager.default.temporaryDirectory.appendingPathComponent("gridmon-segment-\(UUID())").path
        try FileManager.default.createDirectory(atPath: mount, withIntermediateDirectories: true)
        let status = try #require(try? runMount(["-t", "tmpfs", "-o", "size=2m", "tmpfs", mount]))
        try #require(status == 0, "mount failed")
        defer {
            _ = try? runMount(["-l", mount], tool: "/usr/bin/umount")
            try? FileManager.default.removeItem(atPath: mount)
        }
        let step = 1 << 20
        // With room: a step of zeros goes down past the records, and a close cuts it off.
        do {
            let file = try SegmentFile(path: mount + "/roomy", preallocateBytes: step)
            try file.append(record(1))
            try file.sync()
            file.prepareAhead()
            #expect(fileSize(mount + "/roomy") == 1000 + step)
        }
        #expect(fileSize(mount + "/roomy") == 1000)
        unlink(mount + "/roomy")

        // Without: about 300 kB left, so a step of zeros fails part way.
        let path = mount + "/full"
        let file = try SegmentFile(path: path, preallocateBytes: step)
        try file.append(record(2))
        try file.sync()
        var info = statvfs()
        statvfs(mount, &info)
        let free = Int(info.f_bavail) * Int(info.f_frsize)
        let filler = mount + "/filler"
        try #require(FileManager.default.createFile(atPath: filler, contents: Data(count: free - 300_000)))
        file.prepareAhead()
        #expect(fileSize(path) == 1000, "the zeros that fit were not cut off")
        try file.append(record(3))
        try file.sync()
        #expect(fileSize(path) == 2000)
        // Room again: still no zeros for this segment (not a disk filled to its last byte at
        // every commit).
        unlink(filler)
        file.prepareAhead()
        #expect(fileSize(path) == 2000)
        #expect(FileManager.default.contents(atPath: path) == Data(record(2) + record(3)))
    }
}

/// Runs mount (or `tool`) with `arguments`; its exit status.
private func runMount(_ arguments: [String], tool: String = "/usr/bin/mount") throws -> Int32 {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: tool)
    process.arguments = arguments
    process.standardOutput = FileHandle.nullDevice
    process.standardError = FileHandle.nullDevice
    try process.run()
    process.waitUntilExit()
    return process.terminationStatus
}
