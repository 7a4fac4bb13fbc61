import NIOCore
import Shared

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

    /// Whether raw field `f` (its name at `f.nameStart..<f.nameEnd`) has name `w`, ASCII
    /// letters compared without regard to case on both sides (so `w` needs no lowercase copy).
    @inline(__always)
    private static func rawName(_ p: UnsafeRawBufferPointer, _ f: HeaderField, is w: UnsafeBufferPointer<UInt8>) -> Bool {
        guard f.nameEnd - f.nameStart == w.count else { return false }
        for i in 0..<w.count {
            let c = p[f.nameStart + i], d = w[i]
            if c != d, ((c >= 65 && c <= 90) ? c | 0x20 : c) != ((d >= 65 && d <= 90) ? d | 0x20 : d) { return false }
        }
        return true
    }

    /// The first value of a header, by case-insensitive name.
    func value(named name: String) -> String? {
        if let edited = editedFields {
            return edited.first { $0.hasName(name) }?.value
        }
        var wanted = name
        let raw = wanted.withUTF8 { w in
            bytes.withUnsafeReadableBytes { p -> String? in
                for (i, f) in fields.enumerated() where !isRemoved(i) && Self.rawName(p, f, is: w) {
                    return String(decoding: UnsafeRawBufferPointer(rebasing: p[f.valueStart..<f.valueEnd]), as: UTF8.self)
                }
                return nil
            }
        }
        if raw != nil || added.isEmpty { return raw }
        return name.withBytesInPlace { added.firstValue(named: $0) }
    }

    /// The value of every line of a header, in order; `name` must be lowercase. Only the
    /// matching lines become strings.
    func allValues(lowercasedName name: String) -> [String] {
        if let edited = editedFields {
            return edited.filter { $0.hasName(name) }.map { Self.trimmed($0.value) }
        }
        var out: [String] = []
        var wanted = name
        let fields = self.fields
        let removed = removedMask
        wanted.withUTF8 { w in
            bytes.withUnsafeReadableBytes { p in
                for i in fields.indices where Self.rawName(p, fields[i], is: w) && (i >= 64 || removed & (1 << UInt64(i)) == 0) {
                    let f = fields[i]
                    out.append(String(decoding: UnsafeRawBufferPointer(rebasing: p[f.valueStart..<f.valueEnd]), as: UTF8.self))
                }
            }
        }
        if !added.isEmpty {
            out.append(contentsOf: name.withBytesInPlace { added.trimmedValues(named: $0) })
        }
        return out
    }

    /// Whether a header is present, by case-insensitive name (no value is made).
    func hasHeader(named name: String) -> Bool {
        if let edited = editedFields { return edited.contains { $0.hasName(name) } }
        var wanted = name
        let fields = self.fields
        let removed = removedMask
        let raw = wanted.withUTF8 { w in
            bytes.withUnsafeReadableBytes { p -> Bool in
                for i in fields.indices where (i >= 64 || removed & (1 << UInt64(i)) == 0) && Self.rawName(p, fields[i], is: w) {
                    return true
                }
                return false
            }
        }
        return raw || (!added.isEmpty && name.withBytesInPlace { added.contains(named: $0) })
    }

    /// Offers the bytes of each value of a header (`split`: each comma-separated part, blanks
    /// trimmed) to `body` until it returns true; whether one did. Read in place (mutating only so
    /// that a head stored in a class is not copied for the call), no string is made.
    mutating func anyValueInPlace(named name: String, split: Bool, _ body: (UnsafeBufferPointer<UInt8>) -> Bool) -> Bool {
        var name = name
        return name.withUTF8 { anyValueInPlace(named: $0, split: split, body) }
    }

    /// The same with the name as bytes (what ACL tests hold: no string is read per request).
    mutating func anyValueInPlace(named w: UnsafeBufferPointer<UInt8>, split: Bool, _ body: (UnsafeBufferPointer<UInt8>) -> Bool) -> Bool {
        if let edited = editedFields {
            for f in edited where Self.hasName(f, w) {
                var value = Self.trimmed(f.value)
                if value.withUTF8({ Self.offer($0, split: split, body) }) { return true }
            }
            return false
        }
        if mayHaveParsedLine(named: w) {
            let fields = self.fields
            let removed = removedMask
            let found = bytes.withUnsafeReadableBytes { p -> Bool in
                guard let base = p.baseAddress?.assumingMemoryBound(to: UInt8.self) else { return false }
                for i in fields.indices where Self.rawName(p, fields[i], is: w) && (i >= 64 || removed & (1 << UInt64(i)) == 0) {
                    let f = fields[i]
                    if Self.offer(UnsafeBufferPointer(start: base + f.valueStart, count: f.valueEnd - f.valueStart), split: split, body) {
                        return true
                    }
                }
                return false
            }
            if found { return true }
        }
        return added.anyTrimmedValue(named: w) { Self.offer($0, split: split, body) }
    }

    /// Whether an owned line is called `w` (ASCII letters without regard to case).
    @inline(__always)
    private static func hasName(_ field: HTTPField, _ w: UnsafeBufferPointer<UInt8>) -> Bool {
        let name = field.name.utf8
        guard name.count == w.count else { return false }
        if let same = name.withContiguousStorageIfAvailable({ HTTPField.sameBytes($0, w) }) { return same }
        return HTTPField.sameName(field.name, String(decoding: w, as: UTF8.self))
    }

    /// For each parsed line, a bit of its name (`AddedLines.nameBit`): a name whose bit is clear
    /// has no parsed line, which answers most lookups of absent headers without a scan. Made
    /// at the first lookup (the plain forwarding path never asks).
    private(set) var parsedNameMask: UInt64 = 0
    private(set) var parsedNameMaskReady = false

    /// False when no parsed line can be called `name`.
    private mutating func mayHaveParsedLine(named name: UnsafeBufferPointer<UInt8>) -> Bool {
        buildParsedNameMask()
        return parsedNameMask & AddedLines.nameBit(name) != 0
    }

    private mutating func buildParsedNameMask() {
        guard !parsedNameMaskReady else { return }
        var mask: UInt64 = 0
        let fields = self.fields
        bytes.withUnsafeReadableBytes { p in
            let bytes = p.bindMemory(to: UInt8.self)
            for f in fields { mask |= AddedLines.nameBit(UnsafeBufferPointer(rebasing: bytes[f.nameStart..<f.nameEnd])) }
        }
        parsedNameMask = mask
        parsedNameMaskReady = true
    }

    private mutating func mayHaveParsedLine(named name: String) -> Bool {
        // The name's bytes in place where the string has them (a native string does).
        if let answer = name.utf8.withContiguousStorageIfAvailable({ mayHaveParsedLine(named: $0) }) { return answer }
        var name = name
        return name.withUTF8 { mayHaveParsedLine(named: $0) }
    }

    /// One line's value, or each of its comma-separated parts trimmed of blanks.
    private static func offer(_ value: UnsafeBufferPointer<UInt8>, split: Bool, _ body: (UnsafeBufferPointer<UInt8>) -> Bool) -> Bool {
        guard split, value.contains(UInt8(ascii: ",")) else { return body(value) }
        return BytePieces.anyTrimmed(value, separatedBy: UInt8(ascii: ","), body)
    }

    /// A value rules computed (from decoded input, say) may hold a line break: written out, it
    /// would split the message. Such an edit is not made.
    static func isSafeValue(_ value: String) -> Bool {
        // A native string's bytes in place (`withUTF8` would need a copy, a retain and a release).
        if let safe = value.utf8.withContiguousStorageIfAvailable({ bytes in !bytes.contains { $0 <= 13 && ($0 == 13 || $0 == 10 || $0 == 0) } }) {
            return safe
        }
        return !value.utf8.contains { $0 <= 13 && ($0 == 13 || $0 == 10 || $0 == 0) }
    }

    /// `allValues` through a mutable access: a head stored in a class is then read in place
    /// instead of being copied for the call.
    mutating func allValuesInPlace(lowercasedName name: String) -> [String] {
        allValues(lowercasedName: name)
    }

    // MARK: - Editing (the interface rules use)

    // Edits are an overlay on the parsed lines: `set-header`, `add-header` and `del-header`
    // mark parsed lines removed and append new ones, so untouched lines are still written from
    // their bytes. Edits that rewrite values in place (`replace-header`...) turn the head into
    // an owned list (`editedFields`).

    /// Parsed lines removed by an edit (bit i: `fields[i]`).
    private(set) var removedMask: UInt64 = 0
    /// Lines added by edits, after the parsed ones.
    private(set) var added = AddedLines()
    /// The header lines once an edit needed them all as an owned list; nil while the parsed
    /// lines (and the overlay) stand.
    private(set) var editedFields: [HTTPField]?

    var isEdited: Bool { editedFields != nil || removedMask != 0 || !added.isEmpty }

    @inline(__always) func isRemoved(_ index: Int) -> Bool { index < 64 && removedMask & (1 << UInt64(index)) != 0 }

    /// Every header line, in order.
    var headerFields: [HTTPField] {
        if let editedFields { return editedFields }
        var list: [HTTPField] = []
        list.reserveCapacity(fields.count + 4)
        for (i, f) in fields.enumerated() where !isRemoved(i) { list.append(HTTPField(name: name(f), value: value(f), kind: f.kind)) }
        if !added.isEmpty { list.append(contentsOf: added.fields) }
        return list
    }

    /// Every value of a header, by case-insensitive name, one per line (values are not split
    /// at commas).
    func values(named name: String) -> [String] {
        headerFields.filter { $0.hasName(name) }.map(\.value)
    }

    func contains(_ name: String) -> Bool { hasHeader(named: name) }

    private mutating func edit(_ change: (inout [HTTPField]) -> Void) {
        var list = headerFields
        change(&list)
        editedFields = list
        removedMask = 0
        added = AddedLines()
    }

    /// Marks every parsed line named `name` removed; false when that needs the owned list
    /// (more than 64 lines).
    private mutating func removeRaw(_ name: String) -> Bool {
        guard mayHaveParsedLine(named: name) else { return true }
        var wanted = name
        var mask = removedMask
        // Local copies (references): a closure capturing `self` here would copy the head.
        let fields = self.fields
        let bytes = self.bytes
        let fits = wanted.withUTF8 { w in
            bytes.withUnsafeReadableBytes { p -> Bool in
                for (i, f) in fields.enumerated() where Self.rawName(p, f, is: w) {
                    guard i < 64 else { return false }
                    mask |= 1 << UInt64(i)
                }
                return true
            }
        }
        if fits { removedMask = mask }
        return fits
    }

    /// Appends a header line (`http-request add-header`).
    mutating func addHeader(_ name: String, _ value: String) {
        guard Self.isSafeValue(value) else { return }
        if editedFields != nil {
            editedFields!.append(HTTPField(name: name, value: value))
        } else {
            appendAdded(name, value)
        }
    }

    /// Replaces every line of a header by one (`set-header`).
    mutating func setHeader(_ name: String, _ value: String) {
        guard Self.isSafeValue(value) else { return }
        if editedFields == nil, removeRaw(name) {
            removeAdded(named: name)
            appendAdded(name, value)
            return
        }
        edit { list in
            list.removeAll { $0.hasName(name) }
            list.append(HTTPField(name: name, value: value))
        }
    }

    /// A field value without the blanks around it (they are not part of it, RFC 9110 5.5). A
    /// value a rule wrote is sent as written but read back trimmed, as a parsed line is (in
    /// HAProxy too: `res.fhdr` of a value set to "a " is "a", the wire keeps the space).
    static func trimmed(_ value: String) -> String {
        guard let first = value.utf8.first, let last = value.utf8.last,
              first == 32 || first == 9 || last == 32 || last == 9 else { return value }
        return String(Substring(value).trimmingBlanks())
    }

    /// Drops the added lines called `name`.
    private mutating func removeAdded(named name: String) {
        guard !added.isEmpty else { return }
        name.withBytesInPlace { added.removeAll(named: $0) }
    }

    private mutating func appendAdded(_ name: String, _ value: String) {
        name.withBytesInPlace { n in value.withBytesInPlace { v in added.append(name: n, value: v) } }
    }

    /// Removes every line of a header (`del-header`).
    mutating func removeHeader(_ name: String) {
        if editedFields == nil, removeRaw(name) {
            removeAdded(named: name)
            return
        }
        guard contains(name) else { return }
        edit { $0.removeAll { $0.hasName(name) } }
    }

    /// Rewrites the lines of a header one by one: the n-th line takes the n-th value, or goes
    /// when it is nil (cookie persistence edits `Cookie` and `Set-Cookie` lines in place).
    mutating func rewriteLines(_ name: String, _ values: [String?]) {
        edit { list in
            var n = 0
            var result: [HTTPField] = []
            result.reserveCapacity(list.count)
            for var field in list {
                guard field.hasName(name) else {
                    result.append(field)
                    continue
                }
                let value = n < values.count ? values[n] : field.value
                n += 1
                guard let value, Self.isSafeValue(value) else { continue }
                field.value = value
                result.append(field)
            }
            list = result
        }
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
        reasonOverride = reason ?? HTTPReasonPhrase.text(code)
    }

    /// Rewrites each value of a header (`replace-header` / `replace-value`).
    mutating func replaceHeaderValues(_ name: String, _ transform: (String) -> String) {
        guard contains(name) else { return }
        var list = headerFields
        var changed = false
        for i in list.indices where list[i].hasName(name) {
            let value = transform(list[i].value)
            if value != list[i].value, Self.isSafeValue(value) {
                list[i].value = value
                changed = true
            }
        }
        if changed { edit { $0 = list } }
    }
}

/// One header line as an owned name and value (the name keeps the spelling it arrived with).
struct HTTPField: Equatable, Sendable {
    /// The name keeps its spelling; its kind is classified once, when the field is made.
    var name: String { didSet { kind = Self.classify(name) } }
    var value: String
    /// The kind the proxy interprets it as (hop-by-hop, framing...).
    private(set) var kind: HeaderKind

    init(name: String, value: String) {
        self.name = name
        self.value = value
        kind = Self.classify(name)
    }

    init(name: String, value: String, kind: HeaderKind) {
        self.name = name
        self.value = value
        self.kind = kind
    }

    static func classify(_ name: String) -> HeaderKind {
        // Read in place: `withUTF8` needs a mutable copy (a retain and a release of the name,
        // for every line a rule adds).
        if let kind = name.utf8.withContiguousStorageIfAvailable({ HeaderKind.classify(UnsafeRawBufferPointer($0), 0, $0.count) }) {
            return kind
        }
        var name = name
        return name.withUTF8 { HeaderKind.classify(UnsafeRawBufferPointer($0), 0, $0.count) }
    }

    /// The name, lowercase (only allocates when it has capitals).
    var lowercasedName: String {
        name.utf8.contains(where: { $0 >= 65 && $0 <= 90 }) ? name.lowercased() : name
    }

    /// ASCII case-insensitive comparison, without allocating.
    func hasName(_ other: String) -> Bool { Self.sameName(name, other) }

    /// Whether two header names are the same, ASCII letters compared without regard to case.
    static func sameName(_ first: String, _ second: String) -> Bool {
        let a = first.utf8, b = second.utf8
        guard a.count == b.count else { return false }
        // Compared as contiguous bytes where both strings have them (native strings do, read
        // without a copy): stepping through two `String.UTF8View`s costs several times more
        // per byte, and rules compare names on every edit.
        if let same = a.withContiguousStorageIfAvailable({ x in b.withContiguousStorageIfAvailable { y in sameBytes(x, y) } }),
           let same {
            return same
        }
        var i = a.startIndex, j = b.startIndex
        while i != a.endIndex {
            let x = a[i], y = b[j]
            if x != y, ((x >= 65 && x <= 90) ? x | 0x20 : x) != ((y >= 65 && y <= 90) ? y | 0x20 : y) { return false }
            a.formIndex(after: &i)
            b.formIndex(after: &j)
        }
        return true
    }

    static func sameBytes(_ x: UnsafeBufferPointer<UInt8>, _ y: UnsafeBufferPointer<UInt8>) -> Bool {
        for i in 0..<x.count {
            let c = x[i], d = y[i]
            if c != d, ((c >= 65 && c <= 90) ? c | 0x20 : c) != ((d >= 65 && d <= 90) ? d | 0x20 : d) { return false }
        }
        return true
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
