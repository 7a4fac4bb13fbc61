/// A stick table key, in the table's type: compared and hashed as the table does.
public enum StickKey: Hashable, Sendable {
    /// `ip` (the address as an integer) and `integer` keys.
    case integer(Int64)
    case ipv6(IPv6Address)
    /// `string` and `binary` keys, already cut (and for binary, padded) to the table's length.
    case bytes([UInt8])

    /// The key for a sample, converted to the table's type; nil when it cannot be.
    public init?(_ value: SampleValue, type: StickKeyType) {
        switch type {
        case .ipv4:
            guard let a = value.cast(to: .ipv4), case .ipv4(let address) = a else { return nil }
            self = .integer(Int64(address))
        case .ipv6:
            guard let a = value.cast(to: .ipv6), case .ipv6(let address) = a else { return nil }
            self = .ipv6(address)
        case .integer:
            guard let i = value.cast(to: .int), case .int(let n) = i else { return nil }
            // HAProxy's integer keys are 32-bit unsigned: the sample is cut to that.
            self = .integer(Int64(UInt32(truncatingIfNeeded: n)))
        case .string(let length):
            guard let s = value.cast(to: .string), case .string(let text) = s else { return nil }
            self = .bytes(Array(text.utf8.prefix(length)))
        case .binary(let length):
            guard let b = value.cast(to: .binary), case .binary(let bytes) = b else { return nil }
            var key = Array(bytes.prefix(length))
            if key.count < length { key.append(contentsOf: repeatElement(0, count: length - key.count)) }
            self = .bytes(key)
        }
    }

    /// A key as the runtime API writes it (`show table ... key <key>`, `set table`).
    public init?(text: String, type: StickKeyType) {
        switch type {
        case .ipv4:
            guard let a = IPAddressText.parseIPv4(Substring(text)) else { return nil }
            self = .integer(Int64(a))
        case .ipv6:
            guard text.contains(":"), let a = IPAddressText.parseIPv6(Substring(text)) else { return nil }
            self = .ipv6(a)
        case .integer:
            // HAProxy's integer keys are 32-bit and unsigned on the CLI.
            guard let n = UInt32(text) else { return nil }
            self = .integer(Int64(n))
        case .string:
            self.init(.string(text), type: type)
        case .binary(let length):
            // Binary keys are written in hexadecimal.
            guard let bytes = Hex.bytes(text) else { return nil }
            self.init(.binary(Array(bytes.prefix(length))), type: type)
        }
    }

    /// The key as `show table` prints it.
    public func text(_ type: StickKeyType) -> String {
        switch (self, type) {
        case (.integer(let n), .ipv4): return IPAddressText.format(UInt32(truncatingIfNeeded: n))
        case (.integer(let n), _): return String(n)
        case (.ipv6(let a), _): return IPAddressText.format(a)
        case (.bytes(let b), .binary):
            let hex: [Character] = Array("0123456789abcdef")
            var s = ""
            for byte in b { s.append(hex[Int(byte >> 4)]); s.append(hex[Int(byte & 15)]) }
            return s
        case (.bytes(let b), _):
            // A string key ends at its first NUL, as in HAProxy's fixed-size key area.
            return String(decoding: b.prefix { $0 != 0 }, as: UTF8.self)
        }
    }

    /// The key as a sample (`sc0_key`... and the converters that compare keys).
    public func sample(_ type: StickKeyType) -> SampleValue {
        switch (self, type) {
        case (.integer(let n), .ipv4): return .ipv4(UInt32(truncatingIfNeeded: n))
        case (.integer(let n), _): return .int(n)
        case (.ipv6(let a), _): return .ipv6(a)
        case (.bytes(let b), .binary): return .binary(b)
        case (.bytes(let b), _): return .string(String(decoding: b, as: UTF8.self))
        }
    }

    /// The order of `show table` (HAProxy walks its key tree: bytes in network order).
    public static func ordered(_ a: StickKey, _ b: StickKey) -> Bool {
        switch (a, b) {
        case (.integer(let x), .integer(let y)): return UInt64(bitPattern: x) < UInt64(bitPattern: y)
        case (.ipv6(let x), .ipv6(let y)): return (x.high, x.low) < (y.high, y.low)
        case (.bytes(let x), .bytes(let y)): return x.lexicographicallyPrecedes(y)
        default: return false
        }
    }
}
