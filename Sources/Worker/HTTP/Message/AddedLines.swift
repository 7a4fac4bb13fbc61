import Glibc
import NIOCore
import Shared

/// The header lines rules added to a parsed head, kept as the bytes they go out as
/// (`name: value` CRLF, one after the other). A line held as two strings cost a retain and a
/// release of each whenever it was compared, written or dropped; these cost none, and a head's
/// added lines go out in one copy. Lines are found again by their separators: a name holds no
/// colon and a value no line break (`MessageHead.isSafeValue` keeps those out), and heads
/// rarely carry more than a few added lines.
struct AddedLines {
    /// The lines as written, in the order they were added. One allocation, at the first line.
    private var bytes: [UInt8] = []
    /// Whether some line is of a kind the serializer leaves out (hop-by-hop, framing): when
    /// none is, the bytes go out as they are.
    private(set) var holdsFilteredKind = false
    /// A bit for each line's name (`nameBit`): a name whose bit is clear has no line, which
    /// answers most lookups (rules ask for headers nobody added) without a scan.
    private var nameMask: UInt64 = 0

    var isEmpty: Bool { bytes.isEmpty }

    /// Where one line lies in `bytes`.
    struct Line {
        var nameStart: Int
        var nameEnd: Int
        var valueStart: Int
        var valueEnd: Int
        /// Just past the CRLF.
        var end: Int
    }

    /// Appends `name: value` CRLF.
    mutating func append(name: UnsafeBufferPointer<UInt8>, value: UnsafeBufferPointer<UInt8>) {
        let length = name.count + value.count + 4
        // Rules that add one line often add a few: room for them at the first.
        if bytes.isEmpty { bytes.reserveCapacity(max(128, length)) }
        // The line is put together on the stack and appended in one piece: each append to an
        // array checks its capacity and uniqueness again.
        withUnsafeTemporaryAllocation(of: UInt8.self, capacity: length) { line in
            let base = line.baseAddress!
            if name.count > 0 { base.update(from: name.baseAddress!, count: name.count) }
            base[name.count] = UInt8(ascii: ":")
            base[name.count + 1] = UInt8(ascii: " ")
            if value.count > 0 { (base + name.count + 2).update(from: value.baseAddress!, count: value.count) }
            base[length - 2] = 13
            base[length - 1] = 10
            bytes.append(contentsOf: UnsafeBufferPointer(line))
        }
        if Self.isFiltered(HeaderKind.classify(UnsafeRawBufferPointer(name), 0, name.count)) { holdsFilteredKind = true }
        nameMask |= Self.nameBit(name)
    }

    /// A name's bit in a mask of names: from its first and last letters (either case) and its
    /// length (the first letter and the length alone often agree: `X-Client-IP`, `X-Remove-Me`).
    @inline(__always)
    static func nameBit(_ name: UnsafeBufferPointer<UInt8>) -> UInt64 {
        guard let first = name.first, let last = name.last else { return 1 }
        return 1 << UInt64((Int(first | 0x20) &+ Int(last | 0x20) &* 5 &+ name.count &* 7) & 63)
    }

    /// False when no line can be called `w`.
    @inline(__always)
    func mayContain(named w: UnsafeBufferPointer<UInt8>) -> Bool {
        nameMask & Self.nameBit(w) != 0
    }

    /// Kinds a proxy never forwards from an added line: framing stays the parser's, hop-by-hop
    /// headers stay out (`Upgrade` is written where the exchange keeps it).
    static func isFiltered(_ kind: HeaderKind) -> Bool {
        kind.isHopByHop || kind == .contentLength || kind == .transferEncoding
    }

    /// Offers each line, with the bytes it lies in, to `body` until it returns true; whether
    /// one did.
    func firstLine(where body: (UnsafeBufferPointer<UInt8>, Line) -> Bool) -> Bool {
        bytes.withUnsafeBufferPointer { p in
            guard let base = p.baseAddress else { return false }
            // `memchr` finds each separator a word at a time (a byte loop here cost more than
            // the lookups it serves).
            func find(_ byte: UInt8, from start: Int) -> Int {
                guard start < p.count, let hit = memchr(base + start, Int32(byte), p.count - start) else { return p.count }
                return UnsafeRawPointer(base).distance(to: UnsafeRawPointer(hit))
            }
            var start = 0
            while start < p.count {
                let colon = find(UInt8(ascii: ":"), from: start)
                let cr = find(13, from: colon)
                let line = Line(nameStart: start, nameEnd: colon, valueStart: min(colon + 2, cr), valueEnd: cr, end: min(cr + 2, p.count))
                if body(p, line) { return true }
                start = line.end
            }
            return false
        }
    }

    /// Writes every line as it is (see `holdsFilteredKind`).
    func writeAll(into out: inout ByteBuffer) {
        _ = bytes.withUnsafeBytes { out.writeBytes($0) }
    }

    /// Writes the lines whose kind `keep` accepts.
    func write(into out: inout ByteBuffer, keeping keep: (HeaderKind) -> Bool) {
        _ = firstLine { p, line in
            let kind = HeaderKind.classify(UnsafeRawBufferPointer(p), line.nameStart, line.nameEnd)
            if keep(kind) { out.writeBytes(UnsafeRawBufferPointer(rebasing: UnsafeRawBufferPointer(p)[line.nameStart..<line.end])) }
            return false
        }
    }

    /// Whether `line` is called `w` (ASCII letters without regard to case).
    @inline(__always)
    private static func isNamed(_ p: UnsafeBufferPointer<UInt8>, _ line: Line, _ w: UnsafeBufferPointer<UInt8>) -> Bool {
        line.nameEnd - line.nameStart == w.count
            && HTTPField.sameBytes(UnsafeBufferPointer(rebasing: p[line.nameStart..<line.nameEnd]), w)
    }

    /// `line`'s value without the blanks around it (what reading a header gives).
    @inline(__always)
    private static func trimmedValue(_ p: UnsafeBufferPointer<UInt8>, _ line: Line) -> UnsafeBufferPointer<UInt8> {
        var start = line.valueStart, end = line.valueEnd
        while start < end, p[start] == 32 || p[start] == 9 { start += 1 }
        while end > start, p[end - 1] == 32 || p[end - 1] == 9 { end -= 1 }
        return UnsafeBufferPointer(rebasing: p[start..<end])
    }

    func contains(named w: UnsafeBufferPointer<UInt8>) -> Bool {
        mayContain(named: w) && firstLine { p, line in Self.isNamed(p, line, w) }
    }

    /// Offers the trimmed value of each line called `w` to `body` until it returns true;
    /// whether one did.
    func anyTrimmedValue(named w: UnsafeBufferPointer<UInt8>, _ body: (UnsafeBufferPointer<UInt8>) -> Bool) -> Bool {
        mayContain(named: w) && firstLine { p, line in Self.isNamed(p, line, w) && body(Self.trimmedValue(p, line)) }
    }

    /// The first line called `w`, its value as written.
    func firstValue(named w: UnsafeBufferPointer<UInt8>) -> String? {
        guard mayContain(named: w) else { return nil }
        var value: String?
        _ = firstLine { p, line in
            guard Self.isNamed(p, line, w) else { return false }
            value = String(decoding: UnsafeBufferPointer(rebasing: p[line.valueStart..<line.valueEnd]), as: UTF8.self)
            return true
        }
        return value
    }

    /// The value of every line called `w`, trimmed.
    func trimmedValues(named w: UnsafeBufferPointer<UInt8>) -> [String] {
        var values: [String] = []
        guard mayContain(named: w) else { return values }
        _ = firstLine { p, line in
            if Self.isNamed(p, line, w) { values.append(String(decoding: Self.trimmedValue(p, line), as: UTF8.self)) }
            return false
        }
        return values
    }

    /// Drops every line called `w` (a `set-header` or `del-header` after an `add-header`: rare,
    /// so the others are simply added again).
    mutating func removeAll(named w: UnsafeBufferPointer<UInt8>) {
        guard contains(named: w) else { return }
        let old = self
        self = AddedLines()
        _ = old.firstLine { p, line in
            if !Self.isNamed(p, line, w) {
                append(name: UnsafeBufferPointer(rebasing: p[line.nameStart..<line.nameEnd]),
                       value: UnsafeBufferPointer(rebasing: p[line.valueStart..<line.valueEnd]))
            }
            return false
        }
    }

    /// The lines as owned fields (when an edit turns the head into a list).
    var fields: [HTTPField] {
        var list: [HTTPField] = []
        _ = firstLine { p, line in
            list.append(HTTPField(name: String(decoding: UnsafeBufferPointer(rebasing: p[line.nameStart..<line.nameEnd]), as: UTF8.self),
                                  value: String(decoding: UnsafeBufferPointer(rebasing: p[line.valueStart..<line.valueEnd]), as: UTF8.self)))
            return false
        }
        return list
    }
}
