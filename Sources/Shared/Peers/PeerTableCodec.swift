/// A table as peers describe it (the definition message): the sender's id for it, its shared
/// name, its key type and length in wire codes, the data it sends in each update and their
/// parameters.
public struct PeerTableDefinition: Equatable, Sendable {
    public var id: UInt64
    public var name: String
    public var keyType: UInt64
    public var keyLength: UInt64
    /// Bit `n`: data type `n` (HAProxy's numbering, `StickDataKind.rawValue`) follows in updates.
    public var dataTypes: UInt64
    public var expire: UInt64
    /// Elements of each array type sent.
    public var arraySizes: [Int: Int] = [:]
    /// Periods of the rates sent (informative: each side reads with its own).
    public var periods: [Int: UInt64] = [:]
    /// False when the expiry or the data types' parameters are cut or inconsistent: HAProxy
    /// then ignores the definition (and the updates under it).
    public var isUsable = true

    public init(id: UInt64, name: String, keyType: UInt64, keyLength: UInt64, dataTypes: UInt64, expire: UInt64) {
        self.id = id
        self.name = name
        self.keyType = keyType
        self.keyLength = keyLength
        self.dataTypes = dataTypes
        self.expire = expire
    }

    /// The definition of a local table, shared as `name`, under `id`.
    public init(_ table: StickTableDefinition, id: UInt64, name: String) {
        let (type, length) = Self.wireKey(table.keyType)
        var bits: UInt64 = 0
        for item in table.stored { bits |= 1 << UInt64(item.kind.rawValue) }
        self.init(id: id, name: name, keyType: type, keyLength: length, dataTypes: bits, expire: UInt64(max(0, table.expire ?? 0)))
        for item in table.stored {
            if item.kind.isArray { arraySizes[item.kind.rawValue] = item.count }
            if item.kind.isRate { periods[item.kind.rawValue] = UInt64(max(0, item.period)) }
        }
    }

    /// HAProxy's wire codes of key types, and the key length it announces.
    public static func wireKey(_ type: StickKeyType) -> (code: UInt64, length: UInt64) {
        switch type {
        case .integer: return (2, 4)
        case .ipv4: return (4, 4)
        case .ipv6: return (5, 16)
        // A string's key area has room for its NUL.
        case .string(let length): return (6, UInt64(length + 1))
        case .binary(let length): return (7, UInt64(length))
        }
    }

    /// Whether updates under this definition can be stored in `table` (HAProxy compares the
    /// name, the key type and its length).
    public func matches(_ table: StickTableDefinition, name: String) -> Bool {
        let (type, length) = Self.wireKey(table.keyType)
        return isUsable && self.name == name && keyType == type && keyLength == length
    }

    public var payload: [UInt8] {
        var out: [UInt8] = []
        PeerVarint.encode(id, into: &out)
        let nameBytes = Array(name.utf8)
        PeerVarint.encode(UInt64(nameBytes.count), into: &out)
        out.append(contentsOf: nameBytes)
        PeerVarint.encode(keyType, into: &out)
        PeerVarint.encode(keyLength, into: &out)
        PeerVarint.encode(dataTypes, into: &out)
        PeerVarint.encode(expire, into: &out)
        for bit in 0..<64 where dataTypes & (1 << UInt64(bit)) != 0 {
            let isArray = arraySizes[bit] != nil
            guard isArray || periods[bit] != nil else { continue }
            PeerVarint.encode(UInt64(bit), into: &out)
            if let count = arraySizes[bit] { PeerVarint.encode(UInt64(count), into: &out) }
            if let period = periods[bit] { PeerVarint.encode(period, into: &out) }
        }
        return out
    }

    /// Reads a definition; nil when its identity (id, name, key, data types) is malformed, not
    /// `isUsable` when the rest is. Parameters of data types this side does not know end the
    /// list (they come last).
    public init?(payload p: [UInt8]) {
        var at = 0
        guard let id = PeerVarint.decode(p, at: &at), let nameLength = PeerVarint.decode(p, at: &at),
              nameLength > 0, nameLength <= UInt64(p.count - at) else { return nil }
        let name = String(decoding: p[at..<(at + Int(nameLength))], as: UTF8.self)
        at += Int(nameLength)
        guard let keyType = PeerVarint.decode(p, at: &at), let keyLength = PeerVarint.decode(p, at: &at),
              let dataTypes = PeerVarint.decode(p, at: &at) else { return nil }
        self.init(id: id, name: name, keyType: keyType, keyLength: keyLength, dataTypes: dataTypes, expire: 0)
        // Very old senders stop here.
        guard at < p.count else {
            // Without parameters, arrays cannot be read.
            isUsable = dataTypes & (1 << 22 | 1 << 23 | 1 << 24) == 0
            return
        }
        guard let expire = PeerVarint.decode(p, at: &at) else { isUsable = false; return }
        self.expire = expire
        for bit in 0..<64 where dataTypes & (1 << UInt64(bit)) != 0 {
            guard let kind = StickDataKind(rawValue: bit) else { break }
            guard kind.isArray || kind.isRate else { continue }
            guard let sent = PeerVarint.decode(p, at: &at), sent == UInt64(bit) else { isUsable = false; return }
            if kind.isArray {
                guard let count = PeerVarint.decode(p, at: &at), (1...100).contains(count) else { isUsable = false; return }
                arraySizes[bit] = Int(count)
            }
            if kind.isRate {
                guard let period = PeerVarint.decode(p, at: &at) else { isUsable = false; return }
                periods[bit] = period
            }
        }
    }
}

/// The `server_key` strings a session has sent or received, by a small id (HAProxy's
/// dictionary cache: 128 entries, replaced in turn).
public struct PeerDictionary: Sendable {
    public static let size = 128
    private var names: [String?] = Array(repeating: nil, count: PeerDictionary.size)
    private var ids: [String: Int] = [:]
    private var next = 0

    public init() {}

    /// The id of `name` and whether the peer already knows it (sending side).
    mutating func id(for name: String) -> (id: Int, known: Bool) {
        if let id = ids[name] { return (id, true) }
        let slot = next
        next = (next + 1) % Self.size
        if let old = names[slot] { ids.removeValue(forKey: old) }
        names[slot] = name
        ids[name] = slot + 1
        return (slot + 1, false)
    }

    /// Receiving side.
    mutating func learn(_ name: String, id: Int) { names[id - 1] = name }
    func name(_ id: Int) -> String? { names[id - 1] }
}

/// Updates of entries, from a table's storage to the wire and back.
public enum PeerUpdateCodec {
    public struct Malformed: Error, Sendable {}

    /// An update of entry `slot`: with `id` unless the peer can count it (`incremental`),
    /// with the time it has left when `timed`.
    public static func encode(_ storage: StickTableStorage, slot: Int32, keyType: StickKeyType, id: UInt32, incremental: Bool,
                              timed: Bool, now: Int64, dictionary: inout PeerDictionary, into out: inout [UInt8]) {
        var p: [UInt8] = []
        if !incremental { appendU32(id, &p) }
        if timed {
            let left = storage.expire == nil ? 0 : storage.remaining(slot, now: now)
            appendU32(UInt32(clamping: left), &p)
        }
        encodeKey(storage.key(slot), keyType, into: &p)
        for item in storage.layout.stored {
            for element in 0..<item.count {
                if item.kind == .serverKey {
                    encodeServerKey(storage.serverKey(slot), dictionary: &dictionary, into: &p)
                } else if item.kind.isRate {
                    let raw = storage.rawRate(slot, item.kind, element) ?? (FrequencyCounter.unset, 0, 0)
                    if raw.tick == FrequencyCounter.unset {
                        p.append(contentsOf: [0, 0, 0])
                    } else {
                        PeerVarint.encode(UInt64(UInt32(truncatingIfNeeded: now - raw.tick)), into: &p)
                        PeerVarint.encode(UInt64(UInt32(clamping: raw.current)), into: &p)
                        PeerVarint.encode(UInt64(UInt32(clamping: raw.previous)), into: &p)
                    }
                } else {
                    let value = storage.rawValue(slot, item.kind, element) ?? 0
                    PeerVarint.encode(UInt64(bitPattern: value), into: &p)
                }
            }
        }
        let type = timed ? (incremental ? PeerMessageCode.timedIncrementalUpdate : PeerMessageCode.timedUpdate)
                         : (incremental ? PeerMessageCode.incrementalUpdate : PeerMessageCode.update)
        PeerFrame(PeerMessageCode.stickTable, type, p).encode(into: &out)
    }

    /// Applies a received update to `storage` (a table whose definition `remote` matched).
    /// Returns the update's id when it carries one. Data the table does not store is read and
    /// dropped; `conn_cur` stays local, as in HAProxy.
    public static func apply(_ payload: [UInt8], type: UInt8, remote: PeerTableDefinition, to storage: inout StickTableStorage,
                             keyType: StickKeyType, now: Int64, dictionary: inout PeerDictionary) throws(Malformed) -> UInt32? {
        var at = 0
        let incremental = type == PeerMessageCode.incrementalUpdate || type == PeerMessageCode.timedIncrementalUpdate
        let timed = type == PeerMessageCode.timedUpdate || type == PeerMessageCode.timedIncrementalUpdate
        let id = incremental ? nil : try readU32(payload, &at)
        let remaining = timed ? Int64(try readU32(payload, &at)) : nil
        let key = try decodeKey(payload, &at, keyType, keyLength: Int(clamping: remote.keyLength))
        // Read everything first: a malformed message changes nothing.
        var scalars: [(StickDataKind, Int, Int64)] = []
        var rates: [(StickDataKind, Int, (tick: Int64, current: Int64, previous: Int64))] = []
        var serverKey: String?
        for bit in 0..<64 where remote.dataTypes & (1 << UInt64(bit)) != 0 {
            // Types this side does not know come last (newer versions): the rest is skipped.
            guard let kind = StickDataKind(rawValue: bit) else { break }
            let count: Int
            if kind.isArray {
                guard let n = remote.arraySizes[bit] else { throw Malformed() }
                count = n
            } else {
                count = 1
            }
            for element in 0..<count {
                if kind == .serverKey {
                    serverKey = try decodeServerKey(payload, &at, dictionary: &dictionary)
                } else if kind.isRate {
                    let elapsed = try varint(payload, &at), current = try varint(payload, &at), previous = try varint(payload, &at)
                    rates.append((kind, element, (now - Int64(min(elapsed, UInt64(UInt32.max))), Int64(min(current, UInt64(UInt32.max))),
                                                  Int64(min(previous, UInt64(UInt32.max))))))
                } else {
                    let value = try varint(payload, &at)
                    // A server id is signed (sent sign-extended); counts are not.
                    let stored = kind == .serverID ? Int64(bitPattern: value) : Int64(clamping: value)
                    if kind != .connCur { scalars.append((kind, element, stored)) }
                }
            }
        }
        guard let slot = storage.findOrCreate(key, now: now, local: false) else { return id }
        storage.forgetLocalChange(slot)
        for (kind, element, value) in scalars { storage.setRawValue(slot, kind, element, value) }
        for (kind, element, raw) in rates { storage.setRawRate(slot, kind, element, raw) }
        if let serverKey { storage.setServerKey(slot, serverKey, local: false) }
        storage.learnExpiry(slot, remaining: remaining, now: now)
        return id
    }

    // MARK: - Keys

    static func encodeKey(_ key: StickKey, _ type: StickKeyType, into p: inout [UInt8]) {
        switch (key, type) {
        case (.integer(let n), _):
            appendU32(UInt32(truncatingIfNeeded: n), &p)
        case (.ipv6(let a), _):
            for shift in stride(from: 56, through: 0, by: -8) { p.append(UInt8(truncatingIfNeeded: a.high >> UInt64(shift))) }
            for shift in stride(from: 56, through: 0, by: -8) { p.append(UInt8(truncatingIfNeeded: a.low >> UInt64(shift))) }
        case (.bytes(let b), .binary(let length)):
            p.append(contentsOf: b.prefix(length))
            if b.count < length { p.append(contentsOf: repeatElement(0, count: length - b.count)) }
        case (.bytes(let b), _):
            let text = b.prefix { $0 != 0 }
            PeerVarint.encode(UInt64(text.count), into: &p)
            p.append(contentsOf: text)
        }
    }

    static func decodeKey(_ p: [UInt8], _ at: inout Int, _ type: StickKeyType, keyLength: Int) throws(Malformed) -> StickKey {
        switch type {
        case .ipv4:
            return .integer(Int64(try readU32(p, &at)))
        case .integer:
            return .integer(Int64(try readU32(p, &at)))
        case .ipv6:
            guard p.count - at >= 16, let address = IPv6Address(bytes: Array(p[at..<(at + 16)])) else { throw Malformed() }
            at += 16
            return .ipv6(address)
        case .string(let length):
            let count = try varint(p, &at)
            guard count <= UInt64(p.count - at) else { throw Malformed() }
            let bytes = p[at..<(at + Int(count))]
            at += Int(count)
            return .bytes(Array(bytes.prefix { $0 != 0 }.prefix(length)))
        case .binary(let length):
            guard keyLength == length, p.count - at >= length else { throw Malformed() }
            defer { at += length }
            return .bytes(Array(p[at..<(at + length)]))
        }
    }

    // MARK: - Server keys

    static func encodeServerKey(_ name: String?, dictionary: inout PeerDictionary, into p: inout [UInt8]) {
        guard let name else {
            p.append(0)
            return
        }
        let (id, known) = dictionary.id(for: name)
        var value: [UInt8] = []
        PeerVarint.encode(UInt64(id), into: &value)
        if !known {
            let bytes = Array(name.utf8)
            PeerVarint.encode(UInt64(bytes.count), into: &value)
            value.append(contentsOf: bytes)
        }
        PeerVarint.encode(UInt64(value.count), into: &p)
        p.append(contentsOf: value)
    }

    static func decodeServerKey(_ p: [UInt8], _ at: inout Int, dictionary: inout PeerDictionary) throws(Malformed) -> String? {
        let length = try varint(p, &at)
        guard length > 0 else { return nil }
        guard length <= UInt64(p.count - at) else { throw Malformed() }
        let end = at + Int(length)
        guard let id = PeerVarint.decode(p, at: &at, end: end), (1...UInt64(PeerDictionary.size)).contains(id) else { throw Malformed() }
        if at == end { return dictionary.name(Int(id)) }
        guard let count = PeerVarint.decode(p, at: &at, end: end), count == UInt64(end - at) else { throw Malformed() }
        let name = String(decoding: p[at..<end], as: UTF8.self)
        at = end
        dictionary.learn(name, id: Int(id))
        return name
    }

    // MARK: - Integers

    static func appendU32(_ value: UInt32, _ p: inout [UInt8]) {
        p.append(UInt8(value >> 24))
        p.append(UInt8(truncatingIfNeeded: value >> 16))
        p.append(UInt8(truncatingIfNeeded: value >> 8))
        p.append(UInt8(truncatingIfNeeded: value))
    }

    static func readU32(_ p: [UInt8], _ at: inout Int) throws(Malformed) -> UInt32 {
        guard p.count - at >= 4 else { throw Malformed() }
        defer { at += 4 }
        return UInt32(p[at]) << 24 | UInt32(p[at + 1]) << 16 | UInt32(p[at + 2]) << 8 | UInt32(p[at + 3])
    }

    static func varint(_ p: [UInt8], _ at: inout Int) throws(Malformed) -> UInt64 {
        guard let value = PeerVarint.decode(p, at: &at) else { throw Malformed() }
        return value
    }
}

/// An acknowledgement: the receiver's last update id of a table, under the sender's table id.
public struct PeerAck: Equatable, Sendable {
    public var tableID: UInt64
    public var updateID: UInt32

    public init(tableID: UInt64, updateID: UInt32) {
        self.tableID = tableID
        self.updateID = updateID
    }

    public var frame: PeerFrame {
        var p: [UInt8] = []
        PeerVarint.encode(tableID, into: &p)
        PeerUpdateCodec.appendU32(updateID, &p)
        return PeerFrame(PeerMessageCode.stickTable, PeerMessageCode.ack, p)
    }

    public init?(payload: [UInt8]) {
        var at = 0
        guard let table = PeerVarint.decode(payload, at: &at), let id = try? PeerUpdateCodec.readU32(payload, &at) else { return nil }
        self.init(tableID: table, updateID: id)
    }
}
