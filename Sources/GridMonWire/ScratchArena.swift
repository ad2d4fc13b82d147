/// A bump allocator for the C structs of one message while it is packed or unpacked.
///
/// Packing a 64-sample batch needs ~130 small C structs and arrays, and protobuf-c's unpack
/// of one allocates as many; taking them from one reusable block instead of one `malloc`
/// each (and one `free` each, walking the structs again) keeps both within reach of plain C.
/// `reset()` frees everything at once. When one message needs more than the block holds,
/// the excess comes from the heap and the block grows at the next `reset()` to fit it.
///
/// Ownership and threading: owned by one `MessageEncoder`; not thread-safe. Memory handed out
/// is uninitialized and valid until the next `reset()`.
final class ScratchArena {
    private var block: UnsafeMutableRawPointer
    private var capacity: Int
    private var used = 0
    private var overflow: [UnsafeMutableRawPointer] = []
    private var overflowBytes = 0
    /// The block never grows past this; a message larger than that is served from the heap.
    private static let maxCapacity = 4 * 1024 * 1024

    init(capacity: Int = 16 * 1024) {
        self.capacity = capacity
        self.block = .allocate(byteCount: capacity, alignment: 16)
    }

    deinit {
        reset()
        block.deallocate()
    }

    /// Uninitialized room for `count` values of `T`, valid until `reset()`.
    func allocate<T>(_: T.Type, count: Int) -> UnsafeMutablePointer<T> {
        let alignment = MemoryLayout<T>.alignment
        let size = MemoryLayout<T>.stride * count
        let start = (used + alignment - 1) & ~(alignment - 1)
        if start + size <= capacity {
            used = start + size
            return (block + start).bindMemory(to: T.self, capacity: count)
        }
        let memory = UnsafeMutableRawPointer.allocate(byteCount: max(size, 1), alignment: alignment)
        overflow.append(memory)
        overflowBytes += size + alignment
        return memory.bindMemory(to: T.self, capacity: count)
    }

    /// What `allocate(byteCount:)` hands out between two `reset()`s, at most.
    var budget = Int.max

    /// Uninitialized room for `byteCount` bytes aligned as `malloc` aligns (16), valid until
    /// `reset()`; what protobuf-c's unpack asks its allocator for. Nil (and `exhausted` set)
    /// when it would take what was handed out since `reset()` past `budget`: protobuf-c then
    /// gives up on the message instead of building a peer's 2-byte empty fields into 128-byte
    /// structs each.
    func allocate(byteCount: Int) -> UnsafeMutableRawPointer? {
        guard byteCount <= budget - used - overflowBytes else {
            exhausted = true
            return nil
        }
        return UnsafeMutableRawPointer(allocate(SIMD16<UInt8>.self, count: (byteCount + 15) / 16))
    }

    /// A `budget` refused an allocation since the last `reset()`.
    private(set) var exhausted = false

    /// A NUL-terminated copy of `string` (cut at its first NUL, as C will read it).
    func cString(_ string: String) -> UnsafeMutablePointer<CChar> {
        var string = string
        return string.withUTF8 { utf8 in
            let memory = allocate(CChar.self, count: utf8.count + 1)
            if let base = utf8.baseAddress {
                UnsafeMutableRawPointer(memory).copyMemory(from: base, byteCount: utf8.count)
            }
            memory[utf8.count] = 0
            return memory
        }
    }

    /// Frees all memory handed out since the last reset.
    func reset() {
        if !overflow.isEmpty {
            for memory in overflow { memory.deallocate() }
            overflow.removeAll(keepingCapacity: true)
            let wanted = min(Self.maxCapacity, (used + overflowBytes).roundedUpToPowerOfTwo)
            if wanted > capacity {
                block.deallocate()
                block = .allocate(byteCount: wanted, alignment: 16)
                capacity = wanted
            }
            overflowBytes = 0
        }
        used = 0
        exhausted = false
    }
}

extension Int {
    fileprivate var roundedUpToPowerOfTwo: Int {
        self <= 1 ? 1 : 1 << (Int.bitWidth - (self - 1).leadingZeroBitCount)
    }
}
