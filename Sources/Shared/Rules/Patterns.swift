import Atomics
#if canImport(Glibc)
import Glibc
#endif

/// How an ACL or a map compares a sample with its patterns (`-m <method>`).
public enum MatchMethod: String, Sendable, CaseIterable {
    case found, bool, int, ip, bin, len, str, beg, sub, dir, dom, end, reg
    /// HTTP methods (the default for `method`), compared as strings.
    case meth

    /// The sample type the method compares.
    var sampleType: SampleType {
        switch self {
        case .found, .bool: return .any
        case .int, .len: return .int
        case .ip: return .address
        case .bin: return .binary
        case .meth, .str, .beg, .sub, .dir, .dom, .end, .reg: return .string
        }
    }

    /// The default method for a fetch's output type.
    static func defaultMethod(for type: SampleType) -> MatchMethod {
        switch type {
        case .bool: return .bool
        case .int: return .int
        case .ipv4, .ipv6, .address: return .ip
        case .binary: return .bin
        case .method: return .meth
        case .string, .any: return .str
        }
    }
}

/// An integer range pattern: `10`, `10:20`, `:20`, `10:`, or after `lt/le/gt/ge/eq`.
public struct IntRange: Sendable, Equatable {
    public var low: Int64?
    public var high: Int64?
    func contains(_ v: Int64) -> Bool {
        if let low, v < low { return false }
        if let high, v > high { return false }
        return true
    }
}

/// An IPv4 or IPv6 network.
public struct IPNetwork: Sendable, Equatable {
    public var address: IPv6Address
    public var prefix: Int

    public func contains(_ v: IPv6Address) -> Bool {
        if prefix == 0 { return true }
        let hiMask: UInt64 = prefix >= 64 ? ~0 : ~0 << UInt64(64 - prefix)
        let loMask: UInt64 = prefix <= 64 ? 0 : (prefix >= 128 ? ~0 : ~0 << UInt64(128 - prefix))
        return v.high & hiMask == address.high & hiMask && v.low & loMask == address.low & loMask
    }

    /// `a.b.c.d`, `a.b.c.d/n`, `a.b.c.d/m.m.m.m`, IPv6 with `/n`; IPv4 as mapped IPv6.
    public static func parse(_ text: String) -> IPNetwork? {
        let parts = text.split(separator: "/", maxSplits: 1, omittingEmptySubsequences: false)
        let host = parts[0]
        if let v4 = IPAddressText.parseIPv4(host) {
            var prefix = 32
            if parts.count == 2 {
                if let n = Int(parts[1]), (0...32).contains(n) {
                    prefix = n
                } else if let mask = IPAddressText.parseIPv4(parts[1]) {
                    let ones = mask.nonzeroBitCount
                    guard mask == (ones == 0 ? 0 : ~UInt32(0) << UInt32(32 - ones)) else { return nil }
                    prefix = ones
                } else {
                    return nil
                }
            }
            let masked = prefix == 0 ? 0 : v4 & (~UInt32(0) << UInt32(32 - prefix))
            return IPNetwork(address: IPv6Address(mappedFrom: masked), prefix: 96 + prefix)
        }
        guard let v6 = IPAddressText.parseIPv6(host) else { return nil }
        var prefix = 128
        if parts.count == 2 {
            guard let n = Int(parts[1]), (0...128).contains(n) else { return nil }
            prefix = n
        }
        return IPNetwork(address: v6, prefix: prefix)
    }

    public static func sampleAddress(_ v: SampleValue) -> IPv6Address? {
        switch v {
        case .ipv4(let a): return IPv6Address(mappedFrom: a)
        case .ipv6(let a): return a
        default:
            if let a = v.asIPv4 { return IPv6Address(mappedFrom: a) }
            return v.asIPv6
        }
    }
}

/// One entry of a pattern list or map: the key as written, its value (maps), its id.
public struct PatternEntry: Sendable {
    public var key: String
    public var value: String?
    public var id: Int

    public init(key: String, value: String?, id: Int) {
        self.key = key
        self.value = value
        self.id = id
    }
}

/// A list of patterns compiled for one match method: the entries of an ACL, an ACL file or a
/// map. Exact strings live in a hash table and prefixes in a byte trie, IP networks are
/// scanned longest prefix first, so a long list costs a lookup rather than a scan.
/// Immutable: a runtime update builds a new one.
public final class CompiledPatterns: AtomicReference, Sendable {
    public let method: MatchMethod
    public let caseInsensitive: Bool
    public let entries: [PatternEntry]
    private let exact: ExactTable
    private let prefixes: PrefixTrie?
    private let regexes: [Regex]
    private let ints: [IntRange]
    private let networks: [(network: IPNetwork, index: Int)]
    private let bins: [[UInt8]]
    /// `beg` (case-insensitive), `end` and `sub` patterns as bytes (lowercase under `-i`).
    private let lowered: [[UInt8]]
    /// `dir` and `dom` patterns, trimmed of delimiters.
    private let words: [[UInt8]]

    public struct Invalid: Error, Sendable {
        public var message: String
    }

    public init(method: MatchMethod, caseInsensitive: Bool, entries: [PatternEntry]) throws(Invalid) {
        self.method = method
        self.caseInsensitive = caseInsensitive
        self.entries = entries
        var exact = ExactTable()
        var regexes: [Regex] = []
        var ints: [IntRange] = []
        var networks: [(IPNetwork, Int)] = []
        var bins: [[UInt8]] = []
        var lowered: [String] = []
        var trie: PrefixTrie? = nil
        var pendingOperator: String? = nil
        for (index, entry) in entries.enumerated() {
            let key = entry.key
            switch method {
            case .str, .meth:
                let k = caseInsensitive ? key.asciiLowercased : key
                exact.insert(k, value: index)
            case .beg where !caseInsensitive:
                if trie == nil { trie = PrefixTrie() }
                trie!.insert(Array(key.utf8), index: index)
            case .beg, .sub, .end, .dir, .dom:
                lowered.append(caseInsensitive ? key.asciiLowercased : key)
            case .reg:
                do {
                    regexes.append(try Regex(key, caseInsensitive: caseInsensitive))
                } catch {
                    throw Invalid(message: "regex '\(key)' is invalid (error=\(error.message), erroffset=\(error.offset)).")
                }
            case .int, .len:
                if ["eq", "le", "lt", "ge", "gt"].contains(key) {
                    pendingOperator = key
                    ints.append(IntRange(low: 1, high: 0))  // placeholder that never matches
                    continue
                }
                guard let range = Self.parseRange(key, operator: pendingOperator) else {
                    throw Invalid(message: "'\(key)' is not a number.")
                }
                ints.append(range)
            case .ip:
                guard let network = IPNetwork.parse(key) else {
                    throw Invalid(message: "'\(key)' is not a valid IPv4 or IPv6 address.")
                }
                networks.append((network, index))
            case .bin:
                guard let bytes = Hex.bytes(key) else {
                    throw Invalid(message: "'\(key)' is not a valid hex string.")
                }
                bins.append(bytes)
            case .found, .bool:
                break
            }
        }
        self.exact = exact
        self.regexes = regexes
        self.ints = ints
        // Longest prefix first: a map answers with the most specific network.
        self.networks = networks.sorted { $0.0.prefix > $1.0.prefix || ($0.0.prefix == $1.0.prefix && $0.1 < $1.1) }
        self.bins = bins
        self.lowered = method == .dir || method == .dom ? [] : lowered.map { Array($0.utf8) }
        words = method == .dir || method == .dom
            ? lowered.map { Self.wordPattern($0, delimiters: method == .dir ? Self.directoryDelimiters : Self.domainDelimiters) }
            : []
        self.prefixes = trie
    }

    static func parseRange(_ text: String, operator op: String?) -> IntRange? {
        if let op {
            guard let n = Int64(text) else { return nil }
            switch op {
            case "eq": return IntRange(low: n, high: n)
            case "le": return IntRange(low: nil, high: n)
            case "lt": return n == Int64.min ? IntRange(low: 1, high: 0) : IntRange(low: nil, high: n - 1)
            case "ge": return IntRange(low: n, high: nil)
            default: return n == Int64.max ? IntRange(low: 1, high: 0) : IntRange(low: n + 1, high: nil)
            }
        }
        if let colon = text.firstIndex(of: ":") {
            let a = text[text.startIndex..<colon], b = text[text.index(after: colon)...]
            let low = a.isEmpty ? nil : Int64(a), high = b.isEmpty ? nil : Int64(b)
            if !a.isEmpty && low == nil || !b.isEmpty && high == nil { return nil }
            return IntRange(low: low, high: high)
        }
        guard let n = Int64(text) else { return nil }
        return IntRange(low: n, high: n)
    }

    /// The index of the entry `value` matches, or nil.
    public func match(_ value: SampleValue) -> Int? {
        switch method {
        case .found: return 0
        case .bool: return (value.asBool ?? false) ? 0 : nil
        case .int:
            guard let v = value.asInt else { return nil }
            return ints.firstIndex { $0.contains(v) }
        case .ip:
            guard let a = IPNetwork.sampleAddress(value) else { return nil }
            return networks.first { $0.network.contains(a) }?.index
        case .bin:
            guard let b = value.asBinary else { return nil }
            return bins.firstIndex { $0 == b }
        case .len, .str, .meth, .beg, .end, .sub, .dir, .dom, .reg:
            guard var s = value.asString else { return nil }
            return s.withUTF8 { match(bytes: $0) }
        }
    }

    /// Whether `match(bytes:)` serves this method: the methods that read a string's bytes.
    public static func matchesBytes(_ method: MatchMethod) -> Bool {
        switch method {
        case .len, .str, .meth, .beg, .end, .sub, .dir, .dom, .reg: return true
        default: return false
        }
    }

    /// The index of the entry the bytes of a string sample match, or nil (`matchesBytes`
    /// methods). Under `-i` the patterns were lowercased at load and the subject is here, in a
    /// temporary copy only when it has capitals.
    public func match(bytes text: UnsafeBufferPointer<UInt8>) -> Int? {
        guard caseInsensitive, method != .len, method != .reg, text.contains(where: { $0 &- 65 < 26 }) else {
            return matchLowered(text, original: text)
        }
        return withUnsafeTemporaryAllocation(of: UInt8.self, capacity: text.count) { copy in
            for i in 0..<text.count { let c = text[i]; copy[i] = c &- 65 < 26 ? c | 0x20 : c }
            return matchLowered(UnsafeBufferPointer(copy), original: text)
        }
    }

    /// `text` lowercase when the patterns are (`-i`), `original` as it came (regular
    /// expressions carry their own case rule).
    private func matchLowered(_ text: UnsafeBufferPointer<UInt8>, original: UnsafeBufferPointer<UInt8>) -> Int? {
        switch method {
        case .len:
            let n = Int64(text.count)
            return ints.firstIndex { $0.contains(n) }
        case .str, .meth:
            return exact.find(text)
        case .beg:
            if let prefixes { return prefixes.longestMatch(text) }
            return lowered.firstIndex { Self.bytes(text, havePrefix: $0) }
        case .end:
            return lowered.firstIndex { Self.bytes(text, haveSuffix: $0) }
        case .sub:
            return lowered.firstIndex { Self.bytes(text, contain: $0) }
        case .dir, .dom:
            let delimiters = method == .dir ? Self.directoryDelimiters : Self.domainDelimiters
            return words.firstIndex { Self.matchWord(text, $0, delimiters: delimiters) }
        case .reg:
            return regexes.firstIndex { $0.matches(UnsafeRawBufferPointer(original)) }
        default:
            return nil
        }
    }

    // Byte comparisons: patterns are compared as HAProxy does, on bytes, not on Characters.
    static func bytes(_ text: UnsafeBufferPointer<UInt8>, havePrefix p: [UInt8]) -> Bool {
        let n = p.count
        guard n <= text.count else { return false }
        // The first byte tells most patterns apart without a call to `memcmp`.
        guard let first = p.first else { return true }
        guard text[0] == first else { return false }
        return p.withUnsafeBufferPointer { memcmp(text.baseAddress!, $0.baseAddress!, n) == 0 }
    }

    static func bytes(_ text: UnsafeBufferPointer<UInt8>, haveSuffix p: [UInt8]) -> Bool {
        let n = p.count, m = text.count
        guard n <= m else { return false }
        // The last byte tells most patterns apart without a call to `memcmp`.
        guard let last = p.last else { return true }
        guard text[m - 1] == last else { return false }
        return p.withUnsafeBufferPointer { memcmp(text.baseAddress! + (m - n), $0.baseAddress!, n) == 0 }
    }

    static func bytes(_ text: UnsafeBufferPointer<UInt8>, contain p: [UInt8]) -> Bool {
        let n = p.count, m = text.count
        guard let first = p.first else { return true }
        guard n <= m else { return false }
        return p.withUnsafeBufferPointer { pb in
            var i = 0
            while i + n <= m {
                if text[i] == first, memcmp(text.baseAddress! + i, pb.baseAddress!, n) == 0 { return true }
                i += 1
            }
            return false
        }
    }

    static let directoryDelimiters: [Bool] = delimiterTable("/?")
    static let domainDelimiters: [Bool] = delimiterTable("/?.:")
    static func delimiterTable(_ chars: String) -> [Bool] {
        var table = [Bool](repeating: false, count: 256)
        for c in chars.utf8 { table[Int(c)] = true }
        return table
    }

    /// A `dir`/`dom` pattern without its leading and trailing delimiters.
    static func wordPattern(_ pattern: String, delimiters: [Bool]) -> [UInt8] {
        var p = Array(pattern.utf8)
        while let f = p.first, delimiters[Int(f)] { p.removeFirst() }
        while let l = p.last, delimiters[Int(l)] { p.removeLast() }
        return p
    }

    /// The pattern appears in `text` as a whole word between delimiters (or the ends).
    static func matchWord(_ t: UnsafeBufferPointer<UInt8>, _ p: [UInt8], delimiters: [Bool]) -> Bool {
        guard !p.isEmpty, t.count >= p.count else { return false }
        var i = 0
        while i + p.count <= t.count {
            if i == 0 || delimiters[Int(t[i - 1])], i + p.count == t.count || delimiters[Int(t[i + p.count])] {
                var same = true
                for j in 0..<p.count where t[i + j] != p[j] { same = false; break }
                if same { return true }
            }
            i += 1
        }
        return false
    }

    /// `reg` patterns: the first whose regex matches `subject`, with the byte ranges of its
    /// match and capture groups (`map_regm`).
    public func firstRegexMatch(_ subject: String) -> (index: Int, groups: [Range<Int>?])? {
        guard method == .reg else { return nil }
        for (index, regex) in regexes.enumerated() {
            if let groups = regex.firstMatch(in: subject) { return (index, groups) }
        }
        return nil
    }

    /// The map value of the entry `value` matches.
    public func lookup(_ value: SampleValue) -> String? {
        guard let index = match(value) else { return nil }
        return entries[index].value
    }
}

/// One compiled use of a pattern reference: a match method and case rule over its entries,
/// as an ACL or a map converter reads them. Readers load the compiled list without a lock; a
/// runtime change stores a new one.
public final class PatternSet: Sendable {
    public let reference: PatternReference
    public let method: MatchMethod
    public let caseInsensitive: Bool
    /// `str`, `int` or `ip` for a map converter (what `get map` reports); nil for an ACL.
    public let mapOutput: String?
    /// The list loaded with the configuration, read as long as the runtime API changed nothing
    /// (loading a class reference atomically costs far more than a flag).
    private let initial: CompiledPatterns
    private let changed = ManagedAtomic<Bool>(false)
    private let current: ManagedAtomic<CompiledPatterns>

    init(reference: PatternReference, compiled: CompiledPatterns, mapOutput: String?) {
        self.reference = reference
        method = compiled.method
        caseInsensitive = compiled.caseInsensitive
        self.mapOutput = mapOutput
        initial = compiled
        current = ManagedAtomic(compiled)
    }

    public var patterns: CompiledPatterns {
        changed.load(ordering: .acquiring) ? current.load(ordering: .acquiring) : initial
    }

    /// `patterns.match(bytes:)`, without taking a reference to the list while nothing changed it.
    public func match(bytes text: UnsafeBufferPointer<UInt8>) -> Int? {
        changed.load(ordering: .acquiring) ? current.load(ordering: .acquiring).match(bytes: text) : initial.match(bytes: text)
    }

    /// `patterns.match(_:)`, without taking a reference to the list while nothing changed it.
    public func match(_ value: SampleValue) -> Int? {
        changed.load(ordering: .acquiring) ? current.load(ordering: .acquiring).match(value) : initial.match(value)
    }

    func replace(_ compiled: CompiledPatterns) {
        current.store(compiled, ordering: .releasing)
        changed.store(true, ordering: .releasing)
    }

    /// Whether lookups go through a tree or hash (HAProxy's `idx=tree`) rather than a list.
    public var indexedAsTree: Bool {
        switch method {
        case .str, .meth, .ip: return true
        case .beg: return !caseInsensitive
        default: return false
        }
    }
}

extension PatternFileStore: Equatable {
    /// The files are what the rules loaded; rules compare by where they were declared.
    public static func == (a: PatternFileStore, b: PatternFileStore) -> Bool { true }
}

/// Every pattern reference of the configuration (pattern files, map files, the inline
/// patterns of each ACL), numbered in creation order as the runtime API shows them. Files are
/// read once at load however many rules use them.
public final class PatternFileStore: @unchecked Sendable {
    private var files: [String: [PatternEntry]] = [:]
    private var fileReferences: [String: PatternReference] = [:]
    private var sets: [String: PatternSet] = [:]
    public private(set) var references: [PatternReference] = []
    /// Entry ids, unique across references (the runtime API prints them).
    let entryIDs = EntryIDs()

    public init() {}

    public struct Failure: Error, Sendable {
        public var message: String
    }

    /// The entries of a file: one pattern per line (`withValues`: key, blanks, value).
    func entries(_ path: String, withValues: Bool) -> [PatternEntry]? {
        let cacheKey = (withValues ? "map:" : "acl:") + path
        if let cached = files[cacheKey] { return cached }
        guard let bytes = FileReader.read(path) else { return nil }
        var out: [PatternEntry] = []
        func blank(_ c: UInt8) -> Bool { c == 32 || c == 9 || c == 13 }
        var lineStart = 0
        while lineStart < bytes.count {
            var lineEnd = lineStart
            while lineEnd < bytes.count, bytes[lineEnd] != 10 { lineEnd += 1 }
            var a = lineStart, b = lineEnd
            lineStart = lineEnd + 1
            while a < b, blank(bytes[a]) { a += 1 }
            while b > a, blank(bytes[b - 1]) { b -= 1 }
            if a == b || bytes[a] == UInt8(ascii: "#") { continue }
            if withValues {
                var k = a
                while k < b, bytes[k] != 32, bytes[k] != 9 { k += 1 }
                var v = k
                while v < b, blank(bytes[v]) { v += 1 }
                out.append(PatternEntry(key: String(decoding: bytes[a..<k], as: UTF8.self),
                                        value: String(decoding: bytes[v..<b], as: UTF8.self), id: entryIDs.next()))
            } else {
                out.append(PatternEntry(key: String(decoding: bytes[a..<b], as: UTF8.self), value: nil, id: entryIDs.next()))
            }
        }
        files[cacheKey] = out
        return out
    }

    /// The reference of a file, created on first use; `user` joins its description.
    func fileReference(_ path: String, entries: [PatternEntry], kind: PatternReference.Kind, user: String) -> PatternReference {
        if let existing = fileReferences[path] {
            existing.noteUser(user, kind: kind)
            return existing
        }
        let reference = PatternReference(id: references.count, file: path, kind: kind,
                                         description: "pattern loaded from file '\(path)' used by \(user)",
                                         entries: entries, ids: entryIDs)
        references.append(reference)
        fileReferences[path] = reference
        return reference
    }

    /// The inline patterns of one ACL line.
    func inlineReference(_ keys: [String], description: String) -> PatternReference {
        let entries = keys.map { PatternEntry(key: $0, value: nil, id: entryIDs.next()) }
        let reference = PatternReference(id: references.count, file: nil, kind: .acl, description: description,
                                         entries: entries, ids: entryIDs)
        references.append(reference)
        return reference
    }

    /// The reference named `#<id>` or by its file.
    public func reference(named name: String) -> PatternReference? {
        if name.hasPrefix("#") {
            guard let id = Int(name.dropFirst()), id >= 0, id < references.count else { return nil }
            return references[id]
        }
        return fileReferences[name]
    }

    /// A map file compiled for `method` (shared by every converter that reads it so).
    func map(_ path: String, method: MatchMethod, output: String, user: String) throws(Failure) -> PatternSet {
        guard let entries = entries(path, withValues: true) else {
            throw Failure(message: "failed to open pattern file <\(path)>.")
        }
        let reference = fileReference(path, entries: entries, kind: .map, user: user)
        let key = "\(method.rawValue):\(output):\(path)"
        if let set = sets[key] { return set }
        do {
            let set = try reference.use(method: method, caseInsensitive: false, mapOutput: output)
            sets[key] = set
            return set
        } catch {
            throw Failure(message: "file '\(path)': \(error.message)")
        }
    }
}

/// Hands out entry ids.
final class EntryIDs: @unchecked Sendable {
    private let lock = PatternLock()
    private var last = 0
    func next() -> Int { lock.withLock { last += 1; return last } }
}

/// A pthread mutex held for short, non-blocking work (CLI threads and load, never the request
/// path).
final class PatternLock: @unchecked Sendable {
    private var mutex = pthread_mutex_t()
    init() { pthread_mutex_init(&mutex, nil) }
    deinit { pthread_mutex_destroy(&mutex) }
    func withLock<T>(_ body: () throws -> T) rethrows -> T {
        pthread_mutex_lock(&mutex)
        defer { pthread_mutex_unlock(&mutex) }
        return try body()
    }
}
