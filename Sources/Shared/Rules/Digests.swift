import CHaspTLS
import Foundation

/// Message digests and HMACs through OpenSSL (the `digest`, `hmac`, `sha1`, `sha2` and
/// `secure_memcmp` converters): OpenSSL names the algorithms, as in HAProxy.
public enum Digests {
    /// Whether OpenSSL knows the digest `name` (`sha256`, `md5`, ...).
    public static func isKnown(_ name: String) -> Bool {
        hasp_digest_known(name) != 0
    }

    public static func digest(_ name: String, _ data: [UInt8]) -> [UInt8]? {
        withUnsafeTemporaryAllocation(of: UInt8.self, capacity: 64) { out in
            let length = data.withUnsafeBufferPointer { hasp_digest(name, $0.baseAddress, $0.count, out.baseAddress) }
            return length < 0 ? nil : Array(out.prefix(Int(length)))
        }
    }

    public static func hmac(_ name: String, key: [UInt8], _ data: [UInt8]) -> [UInt8]? {
        withUnsafeTemporaryAllocation(of: UInt8.self, capacity: 64) { out in
            let length = key.withUnsafeBufferPointer { key in
                data.withUnsafeBufferPointer { hasp_hmac(name, key.baseAddress, key.count, $0.baseAddress, $0.count, out.baseAddress) }
            }
            return length < 0 ? nil : Array(out.prefix(Int(length)))
        }
    }

    /// Equal contents, compared in constant time when the lengths are the same.
    public static func constantTimeEqual(_ a: [UInt8], _ b: [UInt8]) -> Bool {
        guard a.count == b.count else { return false }
        return a.withUnsafeBufferPointer { a in b.withUnsafeBufferPointer { hasp_memcmp_equal(a.baseAddress, $0.baseAddress, a.count) != 0 } }
    }
}

/// Base64 as the converters read it (Foundation does the decoding).
public enum Base64 {
    public static func decode(_ text: String) -> [UInt8]? {
        Data(base64Encoded: text).map { Array($0) }
    }
}

/// The "URL and filename safe" base64 of JWTs (`ub64enc`, `ub64dec`): `-` and `_` for `+`
/// and `/`, no padding.
public enum Base64URL {
    public static func encode(_ bytes: [UInt8]) -> String {
        var text = Data(bytes).base64EncodedString()
        while text.last == "=" { text.removeLast() }
        return String(text.map { $0 == "+" ? "-" : $0 == "/" ? "_" : $0 })
    }

    public static func decode(_ text: String) -> [UInt8]? {
        guard text.utf8.count % 4 != 1 else { return nil }
        var standard = String(text.map { $0 == "-" ? "+" : $0 == "_" ? "/" : $0 })
        while standard.utf8.count % 4 != 0 { standard += "=" }
        return Base64.decode(standard)
    }
}
