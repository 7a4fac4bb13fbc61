import NIOCore

/// One header line of a parsed head, as byte ranges into the head's bytes.
struct HeaderField {
    var nameStart: Int
    var nameEnd: Int
    var valueStart: Int
    var valueEnd: Int
    var kind: HeaderKind
}

/// The headers the proxy itself interprets; everything else is `.other`.
enum HeaderKind: UInt8 {
    case other, contentLength, transferEncoding, connection, keepAlive, proxyConnection, te, trailer, upgrade, host, expect

    /// Hop-by-hop headers never forwarded as they are.
    var isHopByHop: Bool {
        switch self {
        case .connection, .keepAlive, .proxyConnection, .te, .trailer, .upgrade: return true
        default: return false
        }
    }

    static func classify(_ p: UnsafeRawBufferPointer, _ start: Int, _ end: Int) -> HeaderKind {
        @inline(__always) func lower(_ c: UInt8) -> UInt8 { (c >= 65 && c <= 90) ? c | 0x20 : c }
        func equals(_ word: StaticString) -> Bool {
            guard end - start == word.utf8CodeUnitCount else { return false }
            let w = word.utf8Start
            for i in 0..<(end - start) where lower(p[start + i]) != w[i] { return false }
            return true
        }
        switch end - start {
        case 2: return equals("te") ? .te : .other
        case 4: return equals("host") ? .host : .other
        case 6: return equals("expect") ? .expect : .other
        case 7: return equals("upgrade") ? .upgrade : equals("trailer") ? .trailer : .other
        case 10: return equals("connection") ? .connection : equals("keep-alive") ? .keepAlive : .other
        case 14: return equals("content-length") ? .contentLength : .other
        case 16: return equals("proxy-connection") ? .proxyConnection : .other
        case 17: return equals("transfer-encoding") ? .transferEncoding : .other
        default: return .other
        }
    }
}

/// How a message body is delimited.
enum BodyFraming: Equatable {
    case none
    case length(Int)
    case chunked
    /// Response read until the server closes.
    case untilClose
}

/// A request or response head: HAProxy's HTX role, the one form every side of the proxy reads
/// and edits. It starts as what a mux parsed (`bytes` plus byte ranges, cheap to forward as it
/// is) and becomes an owned header list the first time something edits a header
/// (`editedFields`). The facts the parser derived (`contentLength`, `chunked`, the `Connection`
/// tokens...) describe the message as received; framing headers are the mux's business and
/// edits do not change how the body is delimited.
struct MessageHead {
    var bytes: ByteBuffer
    var fields: [HeaderField] = []
    /// Request: method, target. Response: status code and reason.
    var method: Substring = ""
    var target: Substring = ""
    var status = 0
    var reasonStart = 0
    var reasonEnd = 0
    var versionMinor = 1
    var contentLength: Int? = nil
    var chunked = false
    var hasTransferEncoding = false
    var connectionClose = false
    var connectionKeepAlive = false
    var connectionUpgrade = false
    var hasUpgrade = false
    var hostCount = 0
    /// Content-Length came as a list or more than once: it is forwarded as one plain value.
    var contentLengthNeedsRewrite = false
    /// Extra header names listed in `Connection` (lowercased), also hop-by-hop.
    var connectionNames: [String] = []

    var isKeepAlive: Bool {
        versionMinor >= 1 ? !connectionClose : connectionKeepAlive && !connectionClose
    }

    func string(_ start: Int, _ end: Int) -> String {
        bytes.getString(at: bytes.readerIndex + start, length: end - start) ?? ""
    }

    func name(_ f: HeaderField) -> String { string(f.nameStart, f.nameEnd) }
    func value(_ f: HeaderField) -> String { string(f.valueStart, f.valueEnd) }

    /// The first value of a header, by case-insensitive name.
    func value(named name: String) -> String? {
        if let edited = editedFields {
            return edited.first { $0.hasName(name) }?.value
        }
        let wanted = Array(name.lowercased().utf8)
        return bytes.withUnsafeReadableBytes { p -> String? in
            for f in fields where f.nameEnd - f.nameStart == wanted.count {
                var same = true
                for i in 0..<wanted.count {
                    let c = p[f.nameStart + i]
                    if ((c >= 65 && c <= 90) ? c | 0x20 : c) != wanted[i] { same = false; break }
                }
                if same { return String(decoding: UnsafeRawBufferPointer(rebasing: p[f.valueStart..<f.valueEnd]), as: UTF8.self) }
            }
            return nil
        }
    }

    // MARK: - Editing (the interface rules use)

    /// The header lines once something edited them; nil while the parsed lines stand.
    private(set) var editedFields: [HTTPField]?

    var isEdited: Bool { editedFields != nil }

    /// Every header line, in order.
    var headerFields: [HTTPField] {
        if let editedFields { return editedFields }
        return fields.map { HTTPField(name: name($0), value: value($0)) }
    }

    /// Every value of a header, by case-insensitive name, one per line (values are not split
    /// at commas).
    func values(named name: String) -> [String] {
        headerFields.filter { $0.hasName(name) }.map(\.value)
    }

    func contains(_ name: String) -> Bool { value(named: name) != nil }

    private mutating func edit(_ change: (inout [HTTPField]) -> Void) {
        var list = headerFields
        change(&list)
        editedFields = list
    }

    /// Appends a header line (`http-request add-header`).
    mutating func addHeader(_ name: String, _ value: String) {
        edit { $0.append(HTTPField(name: name, value: value)) }
    }

    /// Replaces every line of a header by one (`set-header`).
    mutating func setHeader(_ name: String, _ value: String) {
        edit { list in
            list.removeAll { $0.hasName(name) }
            list.append(HTTPField(name: name, value: value))
        }
    }

    /// Removes every line of a header (`del-header`).
    mutating func removeHeader(_ name: String) {
        guard contains(name) else { return }
        edit { $0.removeAll { $0.hasName(name) } }
    }

    /// Removes the header lines whose name passes `test` (`del-header -m beg|end|sub|reg`).
    mutating func removeHeaders(where test: (String) -> Bool) {
        guard headerFields.contains(where: { test($0.name) }) else { return }
        edit { $0.removeAll { test($0.name) } }
    }

    /// A reason phrase that replaces the received one (`set-status`).
    var reasonOverride: String?

    /// `set-status <code> [reason <text>]`: without a reason, the code's standard one.
    mutating func setStatus(_ code: Int, reason: String?) {
        status = code
        reasonOverride = reason ?? HTTPStatusText.reason(code)
    }

    /// Rewrites each value of a header (`replace-header` / `replace-value`).
    mutating func replaceHeaderValues(_ name: String, _ transform: (String) -> String) {
        guard contains(name) else { return }
        edit { list in
            for i in list.indices where list[i].hasName(name) { list[i].value = transform(list[i].value) }
        }
    }
}

/// One header line as an owned name and value (the name keeps the spelling it arrived with).
struct HTTPField: Equatable, Sendable {
    var name: String
    var value: String

    func hasName(_ other: String) -> Bool {
        name.utf8.count == other.utf8.count && name.lowercased() == other.lowercased()
    }

    /// The kind the proxy interprets it as (hop-by-hop, framing...).
    var kind: HeaderKind {
        var bytes = Array(name.utf8)
        return bytes.withUnsafeMutableBytes { HeaderKind.classify(UnsafeRawBufferPointer($0), 0, $0.count) }
    }
}

/// What a mux produces for a message body after its head: HTTP/1 framing, HTTP/2 DATA and
/// trailer frames all reduce to these. (HTTP/1 to HTTP/1 forwards the original framing
/// untouched instead, through `BodyReader`.)
enum HTTPBodyEvent<Payload> {
    case data(Payload)
    case trailers([HTTPField])
    case end
}
