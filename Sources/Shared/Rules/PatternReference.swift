/// A list of patterns (or map entries) as the runtime API names it: a file, or the inline
/// patterns of one ACL line. Its compiled uses (`PatternSet`s: one per match method and case
/// rule) are rebuilt and swapped in whenever the visible entries change.
///
/// Versions work as in HAProxy: entries carry the version they belong to; those of the
/// current version are visible. `prepare` opens a new version, entries are added to it, and
/// `commit` makes it current and drops the older ones.
public final class PatternReference: @unchecked Sendable {
    public enum Kind: Sendable { case acl, map }

    public struct Entry: Sendable, Equatable {
        public var id: Int
        public var key: String
        public var value: String?
        public var version: Int
    }

    public let id: Int
    public let file: String?
    private let lock = PatternLock()
    private var userDescriptions: [String]
    private let base: String?
    private var kinds: Set<Kind>
    private var entries: [Entry]
    public private(set) var currentVersion = 0
    public private(set) var nextVersion = 0
    private var uses: [PatternSet] = []
    private let ids: EntryIDs

    init(id: Int, file: String?, kind: Kind, description: String, entries: [PatternEntry], ids: EntryIDs) {
        self.id = id
        self.file = file
        kinds = [kind]
        if file == nil {
            base = description
            userDescriptions = []
        } else {
            base = nil
            userDescriptions = [description]
        }
        self.entries = entries.map { Entry(id: $0.id, key: $0.key, value: $0.value, version: 0) }
        self.ids = ids
    }

    /// Another rule reads this file: HAProxy lists the latest user first.
    func noteUser(_ user: String, kind: Kind) {
        lock.withLock {
            kinds.insert(kind)
            if let first = userDescriptions.first, let range = first.range(of: " used by ") {
                userDescriptions[0] = String(first[..<range.upperBound]) + user + ", by " + first[range.upperBound...]
            }
        }
    }

    public var isMap: Bool { lock.withLock { kinds.contains(.map) } }
    public var isACL: Bool { lock.withLock { kinds.contains(.acl) } }

    /// `show map` / `show acl`: `<id> (<file>) <description>. curr_ver=.. next_ver=.. entry_cnt=..`.
    public var summary: String {
        lock.withLock {
            let text = base ?? userDescriptions.first ?? ""
            let count = entries.count * max(1, uses.count)
            return "\(id) (\(file ?? "")) \(text). curr_ver=\(currentVersion) next_ver=\(nextVersion) entry_cnt=\(count)"
        }
    }

    /// The compiled uses, most recent first (the order `get map` answers in).
    public var sets: [PatternSet] { lock.withLock { uses.reversed() } }

    /// A compiled use of these entries.
    func use(method: MatchMethod, caseInsensitive: Bool, mapOutput: String?) throws(CompiledPatterns.Invalid) -> PatternSet {
        let visible = lock.withLock { visibleEntries }
        let compiled = try CompiledPatterns(method: method, caseInsensitive: caseInsensitive, entries: visible)
        let set = PatternSet(reference: self, compiled: compiled, mapOutput: mapOutput)
        lock.withLock { uses.append(set) }
        return set
    }

    private var visibleEntries: [PatternEntry] {
        entries.filter { $0.version == currentVersion }.map { PatternEntry(key: $0.key, value: $0.value, id: $0.id) }
    }

    public func entries(version: Int? = nil) -> [Entry] {
        lock.withLock {
            let wanted = version ?? currentVersion
            return entries.filter { $0.version == wanted }
        }
    }

    public enum ChangeError: Error, Equatable {
        case keyNotFound
        case versionOutOfRange
        /// A pattern the match method cannot compile (a bad regex, IP...).
        case invalid(String)
    }

    /// Rebuilds every use from the visible entries; an invalid pattern undoes nothing but is
    /// reported (the entry stays out of the compiled lists).
    private func recompile() -> ChangeError? {
        let visible = visibleEntries
        var failure: ChangeError? = nil
        for set in uses {
            do {
                set.replace(try CompiledPatterns(method: set.method, caseInsensitive: set.caseInsensitive, entries: visible))
            } catch {
                failure = .invalid(error.message)
            }
        }
        return failure
    }

    /// `add map|acl [@<ver>] <ref> <key> [<value>]`.
    public func add(_ items: [(key: String, value: String?)], version: Int? = nil) -> ChangeError? {
        lock.withLock {
            let v = version ?? currentVersion
            if version != nil, v <= currentVersion || v > nextVersion { return .versionOutOfRange }
            // Refuse what the uses cannot compile before anything changes.
            let candidates = items.map { PatternEntry(key: $0.key, value: $0.value, id: 0) }
            for set in uses {
                do throws(CompiledPatterns.Invalid) {
                    _ = try CompiledPatterns(method: set.method, caseInsensitive: set.caseInsensitive, entries: candidates)
                } catch {
                    return .invalid(error.message)
                }
            }
            for item in items { entries.append(Entry(id: ids.next(), key: item.key, value: item.value, version: v)) }
            return v == currentVersion ? recompile() : nil
        }
    }

    /// `del map|acl <ref> <key>|#<id>`: every visible entry with that key, or the one entry.
    public func delete(_ keyOrID: String) -> ChangeError? {
        lock.withLock {
            let before = entries.count
            if keyOrID.hasPrefix("#"), let id = Self.entryID(keyOrID) {
                entries.removeAll { $0.id == id && $0.version == currentVersion }
            } else {
                entries.removeAll { $0.key == keyOrID && $0.version == currentVersion }
            }
            guard entries.count < before else { return .keyNotFound }
            return recompile()
        }
    }

    /// `set map <ref> <key>|#<id> <value>`.
    public func set(_ keyOrID: String, value: String) -> ChangeError? {
        lock.withLock {
            var found = false
            let id = keyOrID.hasPrefix("#") ? Self.entryID(keyOrID) : nil
            for i in entries.indices where entries[i].version == currentVersion
                && (id.map { entries[i].id == $0 } ?? (entries[i].key == keyOrID)) {
                entries[i].value = value
                found = true
            }
            guard found else { return .keyNotFound }
            return recompile()
        }
    }

    /// `clear map|acl [@<ver>] <ref>`.
    public func clear(version: Int? = nil) -> ChangeError? {
        lock.withLock {
            let v = version ?? currentVersion
            if version != nil, v < currentVersion || v > nextVersion { return .versionOutOfRange }
            entries.removeAll { $0.version == v }
            return v == currentVersion ? recompile() : nil
        }
    }

    /// `prepare map|acl <ref>`: a new empty version, returned.
    public func prepare() -> Int {
        lock.withLock {
            nextVersion += 1
            return nextVersion
        }
    }

    /// `commit map|acl @<ver> <ref>`.
    public func commit(version: Int) -> ChangeError? {
        lock.withLock {
            guard version > currentVersion, version <= nextVersion else { return .versionOutOfRange }
            currentVersion = version
            entries.removeAll { $0.version < version }
            return recompile()
        }
    }

    /// Entry ids are printed as `0x<hex>`; `#<hex or decimal>` names one.
    public static func entryID(_ text: String) -> Int? {
        let digits = text.dropFirst()
        if digits.hasPrefix("0x") { return Int(digits.dropFirst(2), radix: 16) }
        return Int(digits)
    }
}
