/// The types a sample can have, as HAProxy names them in messages.
public enum SampleType: UInt8, Sendable, CustomStringConvertible {
    case any, bool, int, ipv4, ipv6, address, string, binary, method

    public var description: String {
        switch self {
        case .any: return "any"
        case .bool: return "bool"
        case .int: return "sint"
        case .ipv4: return "ipv4"
        case .ipv6: return "ipv6"
        case .address: return "addr"
        case .string: return "str"
        case .binary: return "bin"
        case .method: return "meth"
        }
    }
}

/// An IPv6 address as two big-endian halves.
public struct IPv6Address: Hashable, Sendable {
    public var high: UInt64
    public var low: UInt64
    public init(high: UInt64, low: UInt64) { self.high = high; self.low = low }

    public init?(bytes: [UInt8]) {
        guard bytes.count == 16 else { return nil }
        var h: UInt64 = 0, l: UInt64 = 0
        for i in 0..<8 { h = h << 8 | UInt64(bytes[i]) }
        for i in 8..<16 { l = l << 8 | UInt64(bytes[i]) }
        high = h; low = l
    }

    public var bytes: [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(16)
        for i in (0..<8).reversed() { out.append(UInt8(truncatingIfNeeded: high >> (UInt64(i) * 8))) }
        for i in (0..<8).reversed() { out.append(UInt8(truncatingIfNeeded: low >> (UInt64(i) * 8))) }
        return out
    }

    /// `::ffff:a.b.c.d`.
    public init(mappedFrom v4: UInt32) { high = 0; low = 0xffff_0000_0000 | UInt64(v4) }
    public var mappedIPv4: UInt32? { high == 0 && low >> 32 == 0xffff ? UInt32(truncatingIfNeeded: low) : nil }
}

/// One sample: what a fetch produces and a converter transforms.
public enum SampleValue: Hashable, Sendable {
    case bool(Bool)
    case int(Int64)
    case ipv4(UInt32)
    case ipv6(IPv6Address)
    case string(String)
    case binary([UInt8])

    public var type: SampleType {
        switch self {
        case .bool: return .bool
        case .int: return .int
        case .ipv4: return .ipv4
        case .ipv6: return .ipv6
        case .string: return .string
        case .binary: return .binary
        }
    }

    // MARK: - Casts (HAProxy's automatic conversions between sample types)

    /// The sample as text: integers in decimal, addresses in their usual notation.
    public var asString: String? {
        switch self {
        case .string(let s): return s
        case .bool(let b): return b ? "1" : "0"
        case .int(let i): return String(i)
        case .ipv4(let a): return IPAddressText.format(a)
        case .ipv6(let a): return IPAddressText.format(a)
        // As haproxy's cast: the string ends at the first zero byte.
        case .binary(let b): return String(decoding: b.prefix { $0 != 0 }, as: UTF8.self)
        }
    }

    /// Integer: a string converts from its leading decimal digits (an optional sign first).
    public var asInt: Int64? {
        switch self {
        case .int(let i): return i
        case .bool(let b): return b ? 1 : 0
        case .ipv4(let a): return Int64(a)
        case .ipv6: return nil
        case .string(let s): return Self.leadingInteger(Substring(s))
        case .binary(let b): return Self.leadingInteger(Substring(String(decoding: b, as: UTF8.self)))
        }
    }

    public var asBool: Bool? {
        switch self {
        case .bool(let b): return b
        case .int(let i): return i != 0
        case .string, .binary: return asInt.map { $0 != 0 }
        case .ipv4, .ipv6: return nil
        }
    }

    public var asBinary: [UInt8]? {
        switch self {
        case .binary(let b): return b
        case .string(let s): return Array(s.utf8)
        case .ipv4(let a): return [UInt8(a >> 24), UInt8(a >> 16 & 0xff), UInt8(a >> 8 & 0xff), UInt8(a & 0xff)]
        case .ipv6(let a): return a.bytes
        case .int(let i): return withUnsafeBytes(of: i.bigEndian) { Array($0) }
        case .bool: return asString.map { Array($0.utf8) }
        }
    }

    public var asIPv4: UInt32? {
        switch self {
        case .ipv4(let a): return a
        case .ipv6(let a): return a.mappedIPv4
        case .int(let i): return UInt32(truncatingIfNeeded: i)
        case .string(let s): return IPAddressText.parseIPv4(Substring(s))
        default: return nil
        }
    }

    public var asIPv6: IPv6Address? {
        switch self {
        case .ipv6(let a): return a
        case .ipv4(let a): return IPv6Address(mappedFrom: a)
        case .string(let s): return IPAddressText.parseIPv6(Substring(s))
        default: return nil
        }
    }

    /// The value converted to `type`, or nil when HAProxy has no cast for it.
    public func cast(to type: SampleType) -> SampleValue? {
        switch type {
        case .any: return self
        case .bool: return asBool.map { .bool($0) }
        case .int: return asInt.map { .int($0) }
        case .ipv4: return asIPv4.map { .ipv4($0) }
        case .ipv6: return asIPv6.map { .ipv6($0) }
        case .address:
            switch self {
            case .ipv4, .ipv6: return self
            default:
                if let v4 = asIPv4 { return .ipv4(v4) }
                return asIPv6.map { .ipv6($0) }
            }
        case .string, .method: return asString.map { .string($0) }
        case .binary: return asBinary.map { .binary($0) }
        }
    }

    /// Whether a value of type `from` can be cast to `to` at all (checked at load).
    public static func canCast(_ from: SampleType, to: SampleType) -> Bool {
        if to == .any || from == .any || from == to { return true }
        switch (from, to) {
        case (.ipv4, .bool), (.ipv6, .bool), (.ipv6, .int), (.bool, .ipv4), (.bool, .ipv6), (.bool, .address):
            return false
        case (.int, .ipv6), (.binary, .ipv4), (.binary, .ipv6), (.binary, .address):
            return false
        default:
            return true
        }
    }

    static func leadingInteger(_ s: Substring) -> Int64? {
        var value: Int64 = 0
        var negative = false
        var digits = 0
        var index = s.utf8.startIndex
        let utf8 = s.utf8
        if index < utf8.endIndex, utf8[index] == UInt8(ascii: "-") || utf8[index] == UInt8(ascii: "+") {
            negative = utf8[index] == UInt8(ascii: "-")
            index = utf8.index(after: index)
        }
        while index < utf8.endIndex {
            let c = utf8[index]
            guard c >= 48, c <= 57 else { break }
            let (m, o1) = value.multipliedReportingOverflow(by: 10)
            let (a, o2) = m.addingReportingOverflow(Int64(c - 48))
            if o1 || o2 { return negative ? Int64.min : Int64.max }
            value = a
            digits += 1
            index = utf8.index(after: index)
        }
        guard digits > 0 else { return nil }
        return negative ? -value : value
    }
}

/// IPv4/IPv6 text forms.
public enum IPAddressText {
    public static func format(_ a: UInt32) -> String {
        // Written byte by byte: this runs for every `%[src]` and `%ci`.
        String(unsafeUninitializedCapacity: 15) { buffer in
            var n = 0
            var shift: UInt32 = 24
            while true {
                let v = Int(a >> shift & 0xff)
                if v >= 100 { buffer[n] = UInt8(48 + v / 100); n += 1 }
                if v >= 10 { buffer[n] = UInt8(48 + v / 10 % 10); n += 1 }
                buffer[n] = UInt8(48 + v % 10); n += 1
                if shift == 0 { return n }
                buffer[n] = UInt8(ascii: "."); n += 1
                shift -= 8
            }
        }
    }

    /// RFC 5952 form: lowercase, the longest run of zero groups as `::`.
    public static func format(_ a: IPv6Address) -> String {
        if let v4 = a.mappedIPv4 { return "::ffff:" + format(v4) }
        var groups: [UInt16] = []
        for i in (0..<4).reversed() { groups.append(UInt16(truncatingIfNeeded: a.high >> (UInt64(i) * 16))) }
        for i in (0..<4).reversed() { groups.append(UInt16(truncatingIfNeeded: a.low >> (UInt64(i) * 16))) }
        var bestStart = -1, bestLength = 0, i = 0
        while i < 8 {
            if groups[i] == 0 {
                var j = i
                while j < 8, groups[j] == 0 { j += 1 }
                if j - i > bestLength, j - i > 1 { bestStart = i; bestLength = j - i }
                i = j
            } else {
                i += 1
            }
        }
        var text = ""
        i = 0
        while i < 8 {
            if i == bestStart {
                text += "::"
                i += bestLength
                continue
            }
            if !text.isEmpty, !text.hasSuffix(":") { text += ":" }
            text += String(groups[i], radix: 16)
            i += 1
        }
        return text
    }

    public static func parseIPv4(_ s: Substring) -> UInt32? {
        var value: UInt32 = 0
        var parts = 0
        for part in s.split(separator: ".", omittingEmptySubsequences: false) {
            guard !part.isEmpty, part.count <= 3, let n = UInt32(part), n <= 255 else { return nil }
            value = value << 8 | n
            parts += 1
        }
        return parts == 4 ? value : nil
    }

    public static func parseIPv6(_ s: Substring) -> IPv6Address? {
        guard s.contains(":") else { return nil }
        var head: [UInt16] = [], tail: [UInt16] = []
        var text = s
        var tailMode = false
        if let range = text.range(of: "::") {
            tailMode = true
            let before = text[text.startIndex..<range.lowerBound]
            let after = text[range.upperBound...]
            guard let h = groups(before), let t = groups(after) else { return nil }
            head = h; tail = t
            text = ""
        } else {
            guard let h = groups(text) else { return nil }
            head = h
        }
        let total = head.count + tail.count
        if tailMode { guard total <= 7 else { return nil } } else { guard total == 8 else { return nil } }
        let all = head + [UInt16](repeating: 0, count: 8 - total) + tail
        var high: UInt64 = 0, low: UInt64 = 0
        for i in 0..<4 { high = high << 16 | UInt64(all[i]) }
        for i in 4..<8 { low = low << 16 | UInt64(all[i]) }
        return IPv6Address(high: high, low: low)
    }

    private static func groups(_ s: Substring) -> [UInt16]? {
        if s.isEmpty { return [] }
        var out: [UInt16] = []
        let parts = s.split(separator: ":", omittingEmptySubsequences: false)
        for (index, part) in parts.enumerated() {
            if index == parts.count - 1, part.contains(".") {
                guard let v4 = parseIPv4(part) else { return nil }
                out.append(UInt16(v4 >> 16)); out.append(UInt16(v4 & 0xffff))
                continue
            }
            guard !part.isEmpty, part.count <= 4, let n = UInt16(part, radix: 16) else { return nil }
            out.append(n)
        }
        return out
    }
}

extension String {
    /// ASCII letters lowercased, the rest untouched (what HAProxy's `-i` and `lower` do, with
    /// the C library's `tolower`). Without an uppercase letter, the string itself.
    public var asciiLowercased: String { asciiCase(lower: true) }
    public var asciiUppercased: String { asciiCase(lower: false) }

    /// The string's UTF-8 bytes to `body`, read in place where the string has them contiguous
    /// (native and small strings do). `withUTF8` needs a mutable copy to call: a retain and a
    /// release of the storage, on paths rules take for every request.
    @inlinable @inline(__always)
    public func withBytesInPlace<R>(_ body: (UnsafeBufferPointer<UInt8>) -> R) -> R {
        if let result = utf8.withContiguousStorageIfAvailable(body) { return result }
        var copy = self
        return copy.withUTF8(body)
    }

    private func asciiCase(lower: Bool) -> String {
        let low: UInt8 = lower ? 65 : 97
        // One pass over contiguous bytes to see whether anything changes (most names and
        // hosts are already lowercase), a second only when something does.
        let changes = withBytesInPlace { bytes in bytes.contains { $0 &- low < 26 } }
        guard changes else { return self }
        return withBytesInPlace { bytes in
            String(unsafeUninitializedCapacity: bytes.count) { out in
                for i in 0..<bytes.count { let c = bytes[i]; out[i] = c &- low < 26 ? c ^ 0x20 : c }
                return bytes.count
            }
        }
    }
}

extension Array {
    /// Empties the array and keeps its storage. `removeAll(keepingCapacity: true)` goes through
    /// the generic `replaceSubrange`: several hundred instructions for a short list of values
    /// with references, which rules empty on every request.
    @inlinable
    public mutating func removeAllKeepingStorage() {
        while !isEmpty { removeLast() }
    }
}
