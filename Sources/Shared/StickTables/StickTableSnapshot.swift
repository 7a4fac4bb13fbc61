/// A stick table's entries as they leave one worker for the next at a reload (through the
/// master, with the runtime state): keys in text form, absolute expiry dates and rates on the
/// shared monotonic clock, and each row as it was laid out, with the layout to read it by.
public struct StickTableSnapshot: Equatable, Sendable {
    public struct Entry: Equatable, Sendable {
        /// The key as `show table` prints it (re-read in the next table's key type).
        public var key: String
        /// When it expires on `StickClock` (`Int64.max`: never).
        public var expires: Int64
        public var serverKey: String?
        /// `width` integers laid out by the snapshot's `stored` data.
        public var row: [Int64]
    }

    public var name: String
    /// The key type's `stick-table` words (`ip`, `string len 32`...).
    public var keyType: String
    public var stored: [StickStoredData]
    public var entries: [Entry]

    public init(name: String, keyType: String, stored: [StickStoredData], entries: [Entry]) {
        self.name = name
        self.keyType = keyType
        self.stored = stored
        self.entries = entries
    }

    func encode(into w: inout WireWriter) {
        w.string(name)
        w.string(keyType)
        w.array(stored) { w, d in
            w.int(d.kind.rawValue)
            w.int(d.count)
            w.i64(d.period)
        }
        w.array(entries) { w, e in
            w.string(e.key)
            w.i64(e.expires)
            w.string(e.serverKey ?? "")
            w.array(e.row) { $0.i64($1) }
        }
    }

    init(from r: inout WireReader) throws(WireError) {
        name = try r.string()
        keyType = try r.string()
        stored = try r.array { (r: inout WireReader) throws(WireError) -> StickStoredData in
            let raw = try r.int()
            guard let kind = StickDataKind(rawValue: raw) else { throw .invalid("stick data type \(raw)") }
            let count = try r.int()
            guard (1...100).contains(count) else { throw .invalid("stick data count") }
            return StickStoredData(kind: kind, count: count, period: try r.i64())
        }
        let width = StickDataLayout(stored).width
        entries = try r.array { (r: inout WireReader) throws(WireError) -> Entry in
            let key = try r.string()
            let expires = try r.i64()
            let serverKey = try r.string()
            let row = try r.array { (r: inout WireReader) throws(WireError) in try r.i64() }
            guard row.count == width else { throw .invalid("stick table row") }
            return Entry(key: key, expires: expires, serverKey: serverKey.isEmpty ? nil : serverKey, row: row)
        }
    }
}

extension StickKeyType {
    /// The same kind of key (the length of a string or binary key may differ).
    func isSameFamily(as other: StickKeyType) -> Bool {
        switch (self, other) {
        case (.ipv4, .ipv4), (.ipv6, .ipv6), (.integer, .integer), (.string, .string), (.binary, .binary): return true
        default: return false
        }
    }

    /// The words of a `stick-table` line naming this type.
    public var words: String {
        switch self {
        case .string(let length): return "string len \(length)"
        case .binary(let length): return "binary len \(length)"
        default: return name
        }
    }

    init?(words: String) {
        let w = words.split(separator: " ")
        switch (w.first, w.count == 3 ? Int(w[2]) : nil) {
        case ("ip", _): self = .ipv4
        case ("ipv6", _): self = .ipv6
        case ("integer", _): self = .integer
        case ("string", let n?): self = .string(length: n)
        case ("binary", let n?): self = .binary(length: n)
        default: return nil
        }
    }
}

extension StickTable {
    /// Every live entry, read in batches of `batch` slots per lock hold so that event loops
    /// never wait long; at most `limit` entries.
    public func snapshot(limit: Int = .max, batch: Int = 4096) -> StickTableSnapshot {
        let layout = StickDataLayout(definition.stored)
        let type = keyType
        var entries: [StickTableSnapshot.Entry] = []
        var next = 0
        var done = false
        while !done && entries.count < limit {
            let room = limit - entries.count
            let (part, end, finished) = withStorage { s -> ([StickTableSnapshot.Entry], Int, Bool) in
                var part: [StickTableSnapshot.Entry] = []
                let now = self.now
                let end = min(next + batch, s.slotCount)
                for slot in Int32(next)..<Int32(end) where part.count < room {
                    guard s.isLive(slot), !s.isExpired(slot, now: now) || s.references(slot) > 0 else { continue }
                    part.append(StickTableSnapshot.Entry(key: s.key(slot).text(type), expires: s.expiryDate(slot),
                                                         serverKey: s.serverKey(slot), row: s.row(slot)))
                }
                return (part, end, end >= s.slotCount)
            }
            entries += part
            next = end
            done = finished
        }
        return StickTableSnapshot(name: name, keyType: type.words, stored: layout.stored, entries: entries)
    }

    /// Loads a previous worker's entries (before this worker serves). Data both definitions
    /// store is kept (arrays up to the shorter one, rates when their period is the same),
    /// `conn_cur` restarts at 0 (the connections stay with the old worker), entries expire no
    /// later than this table's `expire` allows. Returns a warning when nothing could be kept.
    @discardableResult
    public func load(_ snapshot: StickTableSnapshot) -> String? {
        guard let oldType = StickKeyType(words: snapshot.keyType), oldType.isSameFamily(as: keyType) else {
            return "Stick table '\(name)' starts empty: its key type changed from '\(snapshot.keyType)' to '\(keyType.words)'."
        }
        let oldLayout = StickDataLayout(snapshot.stored)
        // For each datum both store: (old offset, new kind, element count, is rate).
        var copies: [(from: Int, kind: StickDataKind, count: Int)] = []
        let newLayout = StickDataLayout(definition.stored)
        for item in newLayout.stored where item.kind != .serverKey && item.kind != .connCur {
            guard let from = oldLayout.offset(item.kind), oldLayout.period(item.kind) == item.period else { continue }
            copies.append((from, item.kind, min(item.count, oldLayout.count(item.kind))))
        }
        let type = keyType
        let entries = snapshot.entries.sorted { $0.expires < $1.expires }
        var start = 0
        while start < entries.count {
            let end = min(start + 4096, entries.count)
            withStorage { s in
                let now = self.now
                for entry in entries[start..<end] where entry.expires > now {
                    guard let key = StickKey(text: entry.key, type: type), let slot = s.findOrCreate(key, now: now) else { continue }
                    for copy in copies {
                        for element in 0..<copy.count {
                            if copy.kind.isRate {
                                let at = copy.from + element * 3
                                s.setRawRate(slot, copy.kind, element, (entry.row[at], entry.row[at + 1], entry.row[at + 2]))
                            } else {
                                s.set(slot, copy.kind, entry.row[copy.from + element], at: element, now: now)
                            }
                        }
                    }
                    if let serverKey = entry.serverKey { s.setServerKey(slot, serverKey) }
                    s.limitExpiry(slot, to: entry.expires)
                }
            }
            start = end
        }
        // Peers have these entries already: they are not news to push.
        withStorage { $0.resetLocalChanges() }
        return nil
    }
}

extension StickTableStorage {
    var slotCount: Int { keys.count }
    func expiryDate(_ slot: Int32) -> Int64 { expires[Int(slot)] }
    func row(_ slot: Int32) -> [Int64] {
        let base = Int(slot) * layout.width
        return Array(rows[base..<base + layout.width])
    }
    /// An entry loaded from a snapshot keeps its earlier date when it comes sooner.
    mutating func limitExpiry(_ slot: Int32, to date: Int64) {
        if date < expires[Int(slot)] { expires[Int(slot)] = date }
    }
}
