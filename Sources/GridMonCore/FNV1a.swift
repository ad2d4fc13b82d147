/// 64-bit FNV-1a of a string's UTF-8 bytes: a seed that is the same in every process and on
/// every machine (Swift's `hashValue` is randomised per process). Not for hash tables a peer
/// can fill (no key); for seeds and deterministic simulation only. Pure.
public enum FNV1a {
    public static func hash(_ text: String) -> UInt64 {
        var hash: UInt64 = 0xCBF2_9CE4_8422_2325
        for byte in text.utf8 { hash = (hash ^ UInt64(byte)) &* 0x100_0000_01B3 }
        return hash
    }
}
