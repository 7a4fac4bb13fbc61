/// The primitive encoding every master-worker message and record is built from: big-endian
/// fixed-width integers, and byte strings prefixed with their length. Fixed widths keep the
/// decoder trivial to check; the payloads are small and rare (one per reload or hand-over), so
/// compactness does not matter.
public struct WireWriter: Sendable {
    public private(set) var bytes: [UInt8] = []

    public init() {}

    public mutating func u8(_ value: UInt8) { bytes.append(value) }

    public mutating func bool(_ value: Bool) { bytes.append(value ? 1 : 0) }

    public mutating func u32(_ value: UInt32) {
        for shift in stride(from: 24, through: 0, by: -8) { bytes.append(UInt8(truncatingIfNeeded: value >> UInt32(shift))) }
    }

    public mutating func i64(_ value: Int64) {
        let bits = UInt64(bitPattern: value)
        for shift in stride(from: 56, through: 0, by: -8) { bytes.append(UInt8(truncatingIfNeeded: bits >> UInt64(shift))) }
    }

    public mutating func int(_ value: Int) { i64(Int64(value)) }

    public mutating func i32(_ value: Int32) { u32(UInt32(bitPattern: value)) }

    public mutating func data(_ value: [UInt8]) {
        u32(UInt32(clamping: value.count))
        bytes.append(contentsOf: value)
    }

    public mutating func string(_ value: String) { data(Array(value.utf8)) }

    /// A count, then each element.
    public mutating func array<T>(_ values: [T], _ element: (inout WireWriter, T) -> Void) {
        u32(UInt32(clamping: values.count))
        for v in values { element(&self, v) }
    }
}

/// Why bytes did not decode. Every malformed input ends here, never in a trap.
public enum WireError: Error, Equatable, Sendable, CustomStringConvertible {
    case truncated
    case notAFrame
    case unsupportedVersion(UInt8)
    case unknownKind(UInt8)
    case badLength
    case invalid(String)
    case trailingBytes

    public var description: String {
        switch self {
        case .truncated: "truncated message"
        case .notAFrame: "not a master-worker frame"
        case .unsupportedVersion(let v): "unsupported protocol version \(v)"
        case .unknownKind(let k): "unknown message kind \(k)"
        case .badLength: "length field does not match the message"
        case .invalid(let what): "invalid \(what)"
        case .trailingBytes: "bytes left after the message"
        }
    }
}

/// Reads what `WireWriter` wrote, checking every length against what is left.
public struct WireReader: Sendable {
    private let bytes: [UInt8]
    private var offset: Int

    public init(_ bytes: [UInt8], offset: Int = 0) {
        self.bytes = bytes
        self.offset = offset
    }

    public var remaining: Int { bytes.count - offset }

    public mutating func u8() throws(WireError) -> UInt8 {
        guard remaining >= 1 else { throw .truncated }
        defer { offset += 1 }
        return bytes[offset]
    }

    public mutating func bool() throws(WireError) -> Bool {
        switch try u8() {
        case 0: return false
        case 1: return true
        default: throw .invalid("boolean")
        }
    }

    public mutating func u32() throws(WireError) -> UInt32 {
        guard remaining >= 4 else { throw .truncated }
        var value: UInt32 = 0
        for i in 0..<4 { value = value << 8 | UInt32(bytes[offset + i]) }
        offset += 4
        return value
    }

    public mutating func i64() throws(WireError) -> Int64 {
        guard remaining >= 8 else { throw .truncated }
        var value: UInt64 = 0
        for i in 0..<8 { value = value << 8 | UInt64(bytes[offset + i]) }
        offset += 8
        return Int64(bitPattern: value)
    }

    public mutating func int() throws(WireError) -> Int {
        let value = try i64()
        guard let result = Int(exactly: value) else { throw .invalid("integer") }
        return result
    }

    public mutating func i32() throws(WireError) -> Int32 { Int32(bitPattern: try u32()) }

    public mutating func data() throws(WireError) -> [UInt8] {
        let count = Int(try u32())
        guard count <= remaining else { throw .badLength }
        defer { offset += count }
        return Array(bytes[offset..<offset + count])
    }

    /// Strict UTF-8: bytes that are not text are an error, not replacement characters.
    public mutating func string() throws(WireError) -> String {
        let raw = try data()
        guard let text = String(validating: raw, as: UTF8.self) else { throw .invalid("UTF-8 text") }
        return text
    }

    /// A count, then each element. The count is checked against the bytes left (each element
    /// takes at least one byte) before anything is reserved, so a forged count cannot make the
    /// decoder allocate without bound.
    public mutating func array<T>(_ element: (inout WireReader) throws(WireError) -> T) throws(WireError) -> [T] {
        let count = Int(try u32())
        guard count <= remaining else { throw .badLength }
        var result: [T] = []
        result.reserveCapacity(count)
        for _ in 0..<count { result.append(try element(&self)) }
        return result
    }

    public func expectEnd() throws(WireError) {
        guard remaining == 0 else { throw .trailingBytes }
    }
}
