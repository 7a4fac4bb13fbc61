/// Hexadecimal text as HAProxy reads and writes it: binary patterns and keys, `bin(<hex>)`,
/// the `hex` and `be2hex` converters, percent-encodings, binary health-check expectations.
public enum Hex {
    /// Upper-case digits, by value.
    public static let upperDigits = Array("0123456789ABCDEF".utf8)

    /// A hex digit's value (either case).
    public static func digit(_ c: UInt8) -> UInt8? {
        switch c {
        case 48...57: return c - 48
        case 65...70: return c - 55
        case 97...102: return c - 87
        default: return nil
        }
    }

    /// The bytes an even number of hex digits spells; nil for anything else.
    public static func bytes(_ text: String) -> [UInt8]? {
        let chars = Array(text.utf8)
        guard chars.count % 2 == 0 else { return nil }
        var out: [UInt8] = []
        out.reserveCapacity(chars.count / 2)
        var i = 0
        while i < chars.count {
            guard let h = digit(chars[i]), let l = digit(chars[i + 1]) else { return nil }
            out.append(h << 4 | l)
            i += 2
        }
        return out
    }

    /// Two upper-case digits per byte.
    public static func upper<Bytes: Collection>(_ bytes: Bytes) -> String where Bytes.Element == UInt8 {
        var out: [UInt8] = []
        out.reserveCapacity(bytes.count * 2)
        for b in bytes {
            out.append(upperDigits[Int(b >> 4)])
            out.append(upperDigits[Int(b & 15)])
        }
        return String(decoding: out, as: UTF8.self)
    }
}
