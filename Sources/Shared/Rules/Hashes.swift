/// The hash functions of converters and load balancing, bit-compatible with HAProxy's.
public enum Hashes {
    public static func sdbm(_ bytes: [UInt8]) -> UInt32 {
        var hash: UInt32 = 0
        for b in bytes { hash = UInt32(b) &+ (hash << 6) &+ (hash << 16) &- hash }
        return hash
    }

    public static func djb2(_ bytes: [UInt8]) -> UInt32 {
        var hash: UInt32 = 5381
        for b in bytes { hash = (hash << 5) &+ hash &+ UInt32(b) }
        return hash
    }

    /// The "wt6" hash: two words rotated by amounts that depend on the data.
    public static func wt6(_ bytes: [UInt8]) -> UInt32 {
        func rotl(_ v: UInt32, _ n: UInt32) -> UInt32 { n & 31 == 0 ? v : (v << (n & 31)) | (v >> (32 - (n & 31))) }
        var h0: UInt32 = 0xa53c_965a, h1: UInt32 = 0x5ca6_953a
        var step0: UInt32 = 6, step1: UInt32 = 18
        for b in bytes {
            let t = UInt32(b)
            h0 = ~(h0 ^ t)
            h1 = ~(h1 &+ t)
            let r = rotl(h1, step0)
            h1 = rotl(h0, step1)
            h0 = r
            let mix = ((h0 >> 16) ^ h1) & 0xffff
            step0 = mix & 0x1f
            step1 = mix >> 11
        }
        return h0 ^ h1
    }

    /// The byte table of a reflected CRC-32 with this (reversed) polynomial.
    private static func crcTable(_ polynomial: UInt32) -> [UInt32] {
        (0..<256).map { n -> UInt32 in
            var c = UInt32(n)
            for _ in 0..<8 { c = c & 1 != 0 ? polynomial ^ (c >> 1) : c >> 1 }
            return c
        }
    }

    private static let ieeeTable = crcTable(0xedb8_8320)
    private static let castagnoliTable = crcTable(0x82f6_3b78)

    private static func crc(_ bytes: [UInt8], _ table: [UInt32]) -> UInt32 {
        var c: UInt32 = 0xffff_ffff
        for b in bytes { c = table[Int((c ^ UInt32(b)) & 0xff)] ^ (c >> 8) }
        return ~c
    }

    /// CRC-32 (IEEE 802.3, as zlib computes it).
    public static func crc32(_ bytes: [UInt8]) -> UInt32 { crc(bytes, ieeeTable) }

    /// CRC-32C (Castagnoli, as RFC 4960 appendix B computes it).
    public static func crc32c(_ bytes: [UInt8]) -> UInt32 { crc(bytes, castagnoliTable) }

    /// HAProxy's `full_hash` (the converters' avalanche argument): Bob Jenkins' 32-bit integer
    /// mix, then a multiplication by a large prime.
    public static func fullAvalanche(_ value: UInt32) -> UInt32 {
        var a = value
        a = (a &+ 0x7ed5_5d16) &+ (a << 12)
        a = (a ^ 0xc761_c23c) ^ (a >> 19)
        a = (a &+ 0x1656_67b1) &+ (a << 5)
        a = (a &+ 0xd3a2_646c) ^ (a << 9)
        a = (a &+ 0xfd70_46c5) &+ (a << 3)
        a = (a ^ 0xb55a_4f09) ^ (a >> 16)
        return a &* 3_221_225_473
    }

    /// Thomas Wang's 32-bit integer mix: the load balancer's ring positions.
    public static func wangMix(_ value: UInt32) -> UInt32 {
        var a = value
        a = (a ^ 61) ^ (a >> 16)
        a = a &+ (a << 3)
        a = a ^ (a >> 4)
        a = a &* 0x27d4_eb2d
        a = a ^ (a >> 15)
        return a
    }
}
