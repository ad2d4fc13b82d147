/// /proc/self/mounts: which filesystems the `disk` collector reports. Pure. Format: fstab(5),
/// with the kernel's octal escapes (`\040` for a space) in paths.

/// One mounted filesystem.
public struct Mount: Equatable, Sendable {
    public var device: String
    public var path: String
    public var type: String
}

/// Filesystem types that hold no user data: kernel interfaces, memory-backed and read-only
/// images. node_exporter's and Telegraf's default exclusions, merged.
let pseudoFilesystems: Set<String> = [
    "autofs", "binfmt_misc", "bpf", "cgroup", "cgroup2", "configfs", "debugfs", "devpts", "devtmpfs", "efivarfs",
    "fusectl", "hugetlbfs", "iso9660", "mqueue", "nsfs", "overlay", "aufs", "proc", "procfs", "pstore", "ramfs",
    "rpc_pipefs", "securityfs", "selinuxfs", "squashfs", "sysfs", "tmpfs", "tracefs", "fuse.lxcfs", "fuse.gvfsd-fuse",
]

/// Every mount in file order.
public func mounts(_ text: Substring) -> [Mount] {
    text.split(separator: "\n").compactMap { line in
        let f = line.split(separator: " ")
        guard f.count >= 3 else { return nil }
        return Mount(device: unescapeMountField(f[0]), path: unescapeMountField(f[1]), type: String(f[2]))
    }
}

/// The mounts the `disk` collector reports by default: real filesystems, each device once
/// (a bind mount of a device already listed is the same space counted twice).
public func realFilesystems(_ all: [Mount]) -> [Mount] {
    var devices = Set<String>()
    return all.filter { mount in
        !pseudoFilesystems.contains(mount.type) && devices.insert(mount.device).inserted
    }
}

/// Undoes the kernel's `\ooo` escapes (space, tab, newline and backslash in paths).
func unescapeMountField(_ field: Substring) -> String {
    guard field.contains("\\") else { return String(field) }
    var bytes: [UInt8] = []
    let utf8 = Array(field.utf8)
    var i = 0
    while i < utf8.count {
        if utf8[i] == UInt8(ascii: "\\"), i + 3 < utf8.count,
           let value = UInt8(String(decoding: utf8[(i + 1)...(i + 3)], as: UTF8.self), radix: 8) {
            bytes.append(value)
            i += 4
        } else {
            bytes.append(utf8[i])
            i += 1
        }
    }
    return String(decoding: bytes, as: UTF8.self)
}
