import CXXHash

/// The xxHash functions of Debian's libxxhash: XXH64 derives dynamic server cookies (as
/// HAProxy does), and the `xxh32`, `xxh64` and `xxh3` converters hash samples with them.
public enum XXH64 {
    /// The 64-bit xxHash (XXH64) of `bytes`.
    public static func hash(_ bytes: [UInt8], seed: UInt64 = 0) -> UInt64 {
        bytes.withUnsafeBytes { CXXHash.XXH64($0.baseAddress, $0.count, seed) }
    }

    /// The 32-bit xxHash (XXH32).
    public static func hash32(_ bytes: [UInt8], seed: UInt32 = 0) -> UInt32 {
        bytes.withUnsafeBytes { XXH32($0.baseAddress, $0.count, seed) }
    }

    /// The 64-bit XXH3 variant.
    public static func hash3(_ bytes: [UInt8], seed: UInt64 = 0) -> UInt64 {
        bytes.withUnsafeBytes { XXH3_64bits_withSeed($0.baseAddress, $0.count, seed) }
    }
}
