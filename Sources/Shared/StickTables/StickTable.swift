import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// Where each stored datum sits in a table's rows: every row is `width` integers; a counter
/// takes one, a frequency counter three (period start, current count, previous count).
public struct StickDataLayout: Sendable {
    public let width: Int
    public let stored: [StickStoredData]
    private let offsets: [Int]
    private let counts: [Int]
    private let periods: [Int64]

    public init(_ stored: [StickStoredData]) {
        self.stored = stored.sorted { $0.kind < $1.kind }
        var offsets = [Int](repeating: -1, count: StickDataKind.allCases.count)
        var counts = [Int](repeating: 0, count: offsets.count)
        var periods = [Int64](repeating: 0, count: offsets.count)
        var width = 0
        for item in self.stored {
            offsets[item.kind.rawValue] = width
            counts[item.kind.rawValue] = item.count
            periods[item.kind.rawValue] = item.period
            width += item.count * (item.kind.isRate ? 3 : 1)
        }
        self.width = width
        self.offsets = offsets
        self.counts = counts
        self.periods = periods
    }

    /// The offset of element `index` of `kind` in a row, nil when the table does not store it.
    @inline(__always)
    public func offset(_ kind: StickDataKind, _ index: Int = 0) -> Int? {
        let base = offsets[kind.rawValue]
        guard base >= 0, index >= 0, index < counts[kind.rawValue] else { return nil }
        return base + index * (kind.isRate ? 3 : 1)
    }

    public func period(_ kind: StickDataKind) -> Int64 { periods[kind.rawValue] }
    public func count(_ kind: StickDataKind) -> Int { counts[kind.rawValue] }
}

/// The milliseconds of a monotonic clock: what entry expiry and rates are measured with.
public enum StickClock {
    public static func milliseconds() -> Int64 {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return Int64(ts.tv_sec) * 1000 + Int64(ts.tv_nsec) / 1_000_000
    }
}

/// A table's entries: keys, rows of integers, expiry dates and reference counts in flat arrays
/// indexed by slot, and a list from the least to the most recently updated entry. Every entry
/// of a table expires the same delay after its last update, so that list is also the order
/// of expiry: purging and eviction start from its oldest end.
///
/// An entry a stream tracks is referenced (`refs`): it is never removed, so its slot stays
/// valid for the tracker.
public struct StickTableStorage: Sendable {
    public let layout: StickDataLayout
    public let capacity: Int
    public let expire: Int64?
    public let noPurge: Bool

    var index: [StickKey: Int32] = [:]
    private(set) var keys: [StickKey] = []
    var expires: [Int64] = []
    private(set) var refs: [Int32] = []
    private var older: [Int32] = []
    private var newer: [Int32] = []
    private var oldest: Int32 = -1
    private var newest: Int32 = -1
    var rows: [Int64] = []
    private var freeSlots: [Int32] = []
    /// `server_key` values, interned: a row holds an index + 1.
    private var serverKeys: [String] = []
    private var serverKeyIndex: [String: Int] = [:]
    /// Local changes in order, for the peers that share the table (nil when none does).
    var updates: StickUpdateLog?

    init(layout: StickDataLayout, capacity: Int, expire: Int64?, noPurge: Bool) {
        self.layout = layout
        self.capacity = max(1, capacity)
        self.expire = expire
        self.noPurge = noPurge
    }

    public var used: Int { index.count }

    // MARK: - Entries

    /// The entry of `key`, if present and not expired.
    public mutating func find(_ key: StickKey, now: Int64) -> Int32? {
        guard let slot = index[key] else { return nil }
        // A tracked entry stays alive past its date until its last tracker lets it go.
        if isExpired(slot, now: now), refs[Int(slot)] == 0 {
            remove(slot)
            return nil
        }
        return slot
    }

    /// The entry of `key`, created when absent (its expiry starts now). Nil when the table is
    /// full and nothing can be evicted.
    public mutating func findOrCreate(_ key: StickKey, now: Int64, local: Bool = true) -> Int32? {
        if let slot = index[key] {
            if isExpired(slot, now: now), refs[Int(slot)] == 0 {
                // Expired but not purged yet: it starts again as a new entry.
                clearRow(slot)
                touch(slot, now: now)
            }
            return slot
        }
        if index.count >= capacity {
            purge(now: now, limit: 64)
            if index.count >= capacity, noPurge || !evictOldest() { return nil }
        }
        let slot: Int32
        if let reused = freeSlots.popLast() {
            slot = reused
            keys[Int(slot)] = key
        } else {
            slot = Int32(keys.count)
            keys.append(key)
            expires.append(0)
            refs.append(0)
            older.append(-1)
            newer.append(-1)
            rows.append(contentsOf: repeatElement(0, count: layout.width))
        }
        clearRow(slot)
        index[key] = slot
        linkNewest(slot)
        expires[Int(slot)] = expire.map { now + $0 } ?? .max
        if local { updates?.record(slot) }
        return slot
    }

    /// Starts recording local changes for peers.
    public mutating func recordUpdates() {
        if updates == nil { updates = StickUpdateLog() }
    }

    public func isExpired(_ slot: Int32, now: Int64) -> Bool { expires[Int(slot)] <= now }

    /// The entry was updated: its expiry starts again.
    public mutating func touch(_ slot: Int32, now: Int64) {
        // Peers learn that the entry is alive (HAProxy pushes a refreshed entry too).
        updates?.record(slot)
        guard let expire else { return }
        expires[Int(slot)] = now + expire
        if newest != slot {
            unlink(slot)
            linkNewest(slot)
        }
    }

    public mutating func retain(_ slot: Int32) { refs[Int(slot)] += 1 }
    public mutating func release(_ slot: Int32, now: Int64) {
        if refs[Int(slot)] > 0 { refs[Int(slot)] -= 1 }
        touch(slot, now: now)
    }
    public func references(_ slot: Int32) -> Int { Int(refs[Int(slot)]) }
    public func key(_ slot: Int32) -> StickKey { keys[Int(slot)] }
    /// Milliseconds before the entry expires (0 without `expire`).
    public func remaining(_ slot: Int32, now: Int64) -> Int64 {
        expire == nil ? 0 : max(0, expires[Int(slot)] - now)
    }

    /// Removes an entry no stream tracks; false when one does.
    @discardableResult
    public mutating func removeIfUnused(_ slot: Int32) -> Bool {
        guard refs[Int(slot)] == 0 else { return false }
        remove(slot)
        return true
    }

    /// Removes expired entries nobody tracks, oldest first, at most `limit` of them. Returns
    /// how many it removed.
    @discardableResult
    public mutating func purge(now: Int64, limit: Int) -> Int {
        guard expire != nil else { return 0 }
        var removed = 0
        var visited = 0
        var slot = oldest
        // Tracked entries stay in place although expired: step over a bounded number of them.
        while slot >= 0, removed < limit, visited < limit * 2, isExpired(slot, now: now) {
            let next = newer[Int(slot)]
            if refs[Int(slot)] == 0 {
                remove(slot)
                removed += 1
            }
            visited += 1
            slot = next
        }
        return removed
    }

    /// Whether `slot` holds an entry (a slot listed earlier may have been freed since).
    public func isLive(_ slot: Int32) -> Bool {
        Int(slot) < keys.count && index[keys[Int(slot)]] == slot
    }

    /// Every live entry's slot (a snapshot for `show table` and hand-overs).
    public func slots() -> [Int32] { Array(index.values) }

    private mutating func evictOldest() -> Bool {
        var slot = oldest
        var visited = 0
        while slot >= 0, visited < 1024 {
            if refs[Int(slot)] == 0 {
                remove(slot)
                return true
            }
            slot = newer[Int(slot)]
            visited += 1
        }
        return false
    }

    private mutating func remove(_ slot: Int32) {
        updates?.forget(slot)
        index.removeValue(forKey: keys[Int(slot)])
        unlink(slot)
        keys[Int(slot)] = .integer(0)
        refs[Int(slot)] = 0
        freeSlots.append(slot)
    }

    private mutating func clearRow(_ slot: Int32) {
        let base = Int(slot) * layout.width
        for i in 0..<layout.width { rows[base + i] = 0 }
        for item in layout.stored where item.kind.isRate {
            for element in 0..<item.count {
                rows[base + layout.offset(item.kind, element)!] = FrequencyCounter.unset
            }
        }
    }

    private mutating func linkNewest(_ slot: Int32) {
        older[Int(slot)] = newest
        newer[Int(slot)] = -1
        if newest >= 0 { newer[Int(newest)] = slot } else { oldest = slot }
        newest = slot
    }

    private mutating func unlink(_ slot: Int32) {
        let o = older[Int(slot)], n = newer[Int(slot)]
        if o >= 0 { newer[Int(o)] = n } else { oldest = n }
        if n >= 0 { older[Int(n)] = o } else { newest = o }
        older[Int(slot)] = -1
        newer[Int(slot)] = -1
    }

    // MARK: - Data

    /// The value of element `index` of `kind` (a rate read over its period); nil when the
    /// table does not store it.
    public func value(_ slot: Int32, _ kind: StickDataKind, at index: Int = 0, now: Int64) -> Int64? {
        guard let offset = layout.offset(kind, index) else { return nil }
        let at = Int(slot) * layout.width + offset
        if kind.isRate {
            return FrequencyCounter.read(now: now, period: layout.period(kind), tick: rows[at], current: rows[at + 1], previous: rows[at + 2])
        }
        return rows[at]
    }

    /// Adds `amount` to a counter or counts `amount` events of a rate. False when not stored.
    @discardableResult
    public mutating func add(_ slot: Int32, _ kind: StickDataKind, _ amount: Int64, at index: Int = 0, now: Int64) -> Bool {
        guard let offset = layout.offset(kind, index) else { return false }
        let at = Int(slot) * layout.width + offset
        updates?.record(slot)
        if kind.isRate {
            var (tick, current, previous) = (rows[at], rows[at + 1], rows[at + 2])
            FrequencyCounter.add(amount, now: now, period: layout.period(kind), tick: &tick, current: &current, previous: &previous)
            (rows[at], rows[at + 1], rows[at + 2]) = (tick, current, previous)
        } else {
            rows[at] = max(0, rows[at] &+ amount)
        }
        return true
    }

    /// Sets a counter, a flag or a rate (as `value` events in a period starting now).
    @discardableResult
    public mutating func set(_ slot: Int32, _ kind: StickDataKind, _ value: Int64, at index: Int = 0, now: Int64) -> Bool {
        guard let offset = layout.offset(kind, index) else { return false }
        let at = Int(slot) * layout.width + offset
        updates?.record(slot)
        if kind.isRate {
            (rows[at], rows[at + 1], rows[at + 2]) = (now, value, 0)
        } else {
            rows[at] = value
        }
        return true
    }

    /// The raw integers of a rate (for hand-overs that keep a window intact).
    public func rawRate(_ slot: Int32, _ kind: StickDataKind, _ index: Int) -> (tick: Int64, current: Int64, previous: Int64)? {
        guard kind.isRate, let offset = layout.offset(kind, index) else { return nil }
        let at = Int(slot) * layout.width + offset
        return (rows[at], rows[at + 1], rows[at + 2])
    }

    public mutating func setRawRate(_ slot: Int32, _ kind: StickDataKind, _ index: Int, _ raw: (tick: Int64, current: Int64, previous: Int64)) {
        guard kind.isRate, let offset = layout.offset(kind, index) else { return }
        let at = Int(slot) * layout.width + offset
        rows[at] = raw.tick
        rows[at + 1] = raw.current
        rows[at + 2] = raw.previous
    }

    // MARK: - Peers

    /// Entries changed here after `cursor` (see `StickUpdateLog`); none when not recording.
    public mutating func localChanges(after cursor: UInt64, limit: Int) -> [(slot: Int32, sequence: UInt64)] {
        updates?.changes(after: cursor, limit: limit) ?? []
    }

    /// The newest local change's sequence number.
    public var lastLocalChange: UInt64 { updates?.last ?? 0 }

    /// The newest local change's sequence number, as the origin of a resync that sends every
    /// entry: the changes after it are numbered apart.
    public mutating func resyncOrigin() -> UInt64 {
        updates?.markRead()
        return lastLocalChange
    }

    /// A peer's values replace the entry's: a local change not pushed yet is not pushed
    /// (it would send the peer's values back).
    public mutating func forgetLocalChange(_ slot: Int32) { updates?.forget(slot) }

    /// Local changes start over (entries handed over at a reload are not news to peers).
    public mutating func resetLocalChanges() {
        if updates != nil { updates = StickUpdateLog() }
    }

    /// A learned entry's expiry: `remaining` milliseconds from now, at most the table's delay.
    public mutating func learnExpiry(_ slot: Int32, remaining: Int64?, now: Int64) {
        guard let expire else { return }
        expires[Int(slot)] = now + min(max(0, remaining ?? expire), expire)
        if newest != slot {
            unlink(slot)
            linkNewest(slot)
        }
    }

    /// Element `index` of a counter or flag as stored (no change is recorded: peers' values).
    public func rawValue(_ slot: Int32, _ kind: StickDataKind, _ index: Int) -> Int64? {
        guard !kind.isRate, let offset = layout.offset(kind, index) else { return nil }
        return rows[Int(slot) * layout.width + offset]
    }

    public mutating func setRawValue(_ slot: Int32, _ kind: StickDataKind, _ index: Int, _ value: Int64) {
        guard !kind.isRate, let offset = layout.offset(kind, index) else { return }
        rows[Int(slot) * layout.width + offset] = value
    }

    /// `server_key`: the server's name or address the entry sticks to.
    public func serverKey(_ slot: Int32) -> String? {
        guard let at = value(slot, .serverKey, now: 0), at > 0, Int(at) <= serverKeys.count else { return nil }
        return serverKeys[Int(at) - 1]
    }

    public mutating func setServerKey(_ slot: Int32, _ key: String, local: Bool = true) {
        guard layout.offset(.serverKey) != nil else { return }
        let at: Int
        if let existing = serverKeyIndex[key] { at = existing } else {
            // Peers cannot grow the interned names without bound (a server name per server).
            if !local, serverKeys.count >= 4096 || key.utf8.count > 256 { return }
            serverKeys.append(key)
            at = serverKeys.count - 1
            serverKeyIndex[key] = at
        }
        if local {
            set(slot, .serverKey, Int64(at + 1), now: 0)
        } else {
            setRawValue(slot, .serverKey, 0, Int64(at + 1))
        }
    }
}

/// One stick table of the running worker, shared by every event loop: its storage behind a
/// mutex held for a dictionary access and a few integer updates at a time.
public final class StickTable: Sendable {
    public let definition: StickTableDefinition
    private let storage: Mutex<StickTableStorage>
    private let clock: @Sendable () -> Int64

    public init(_ definition: StickTableDefinition, clock: @escaping @Sendable () -> Int64 = StickClock.milliseconds) {
        self.definition = definition
        self.clock = clock
        storage = Mutex(StickTableStorage(layout: StickDataLayout(definition.stored), capacity: definition.size,
                                          expire: definition.expire, noPurge: definition.noPurge))
    }

    public var name: String { definition.name }
    public var keyType: StickKeyType { definition.keyType }
    public var now: Int64 { clock() }
    public var used: Int { storage.withLock { $0.used } }

    /// Runs `body` with the storage locked; keep it short (event loops wait on the lock).
    public func withStorage<Result: Sendable, Failure: Error>(_ body: (inout StickTableStorage) throws(Failure) -> Result) throws(Failure) -> Result {
        try storage.withLock { (value: inout StickTableStorage) throws(Failure) -> Result in try body(&value) }
    }
}

/// The stick tables of a configuration, by name (proxies' tables and `peers` sections' tables).
public final class StickTableRegistry: Sendable {
    public let tables: [StickTable]
    private let byName: [String: StickTable]

    public init(_ definitions: [StickTableDefinition], clock: @escaping @Sendable () -> Int64 = StickClock.milliseconds) {
        tables = definitions.map { StickTable($0, clock: clock) }
        var byName: [String: StickTable] = [:]
        for table in tables { byName[table.name] = table }
        self.byName = byName
    }

    public subscript(_ name: String) -> StickTable? { byName[name] }
    public var isEmpty: Bool { tables.isEmpty }
}
