/// What a stick table's keys are (`stick-table type ...`).
public enum StickKeyType: Sendable, Equatable {
    case ipv4, ipv6, integer
    /// Strings and binary keys are cut to `length` bytes; binary keys are padded with zeros.
    case string(length: Int)
    case binary(length: Int)

    /// HAProxy's name of the type, in `show table`.
    public var name: String {
        switch self {
        case .ipv4: return "ip"
        case .ipv6: return "ipv6"
        case .integer: return "integer"
        case .string: return "string"
        case .binary: return "binary"
        }
    }

    /// The sample type a key is converted to before a lookup.
    public var sampleType: SampleType {
        switch self {
        case .ipv4: return .ipv4
        case .ipv6: return .ipv6
        case .integer: return .int
        case .string: return .string
        case .binary: return .binary
        }
    }
}

/// The data a table can store, in HAProxy's order (the order of `show table` columns).
public enum StickDataKind: Int, CaseIterable, Sendable, Comparable {
    case serverID, gpt0, gpc0, gpc0Rate, connCnt, connRate, connCur, sessCnt, sessRate
    case httpReqCnt, httpReqRate, httpErrCnt, httpErrRate, bytesInCnt, bytesInRate, bytesOutCnt, bytesOutRate
    case gpc1, gpc1Rate, serverKey, httpFailCnt, httpFailRate, gpt, gpc, gpcRate

    static let names = [
        "server_id", "gpt0", "gpc0", "gpc0_rate", "conn_cnt", "conn_rate", "conn_cur", "sess_cnt", "sess_rate",
        "http_req_cnt", "http_req_rate", "http_err_cnt", "http_err_rate", "bytes_in_cnt", "bytes_in_rate",
        "bytes_out_cnt", "bytes_out_rate", "gpc1", "gpc1_rate", "server_key", "http_fail_cnt", "http_fail_rate",
        "gpt", "gpc", "gpc_rate",
    ]
    static let byName: [String: StickDataKind] = Dictionary(uniqueKeysWithValues: allCases.map { ($0.name, $0) })

    public init?(name: String) {
        guard let kind = Self.byName[name] else { return nil }
        self = kind
    }

    public var name: String { Self.names[rawValue] }
    /// A frequency counter over a period (`http_req_rate(10s)`).
    public var isRate: Bool {
        switch self {
        case .gpc0Rate, .connRate, .sessRate, .httpReqRate, .httpErrRate, .bytesInRate, .bytesOutRate, .gpc1Rate, .httpFailRate, .gpcRate:
            return true
        default:
            return false
        }
    }
    /// An array of `n` elements (`gpc(3)`, `gpc_rate(3,10s)`).
    public var isArray: Bool { self == .gpt || self == .gpc || self == .gpcRate }
    /// Stored as given, not counted (`set table` may write it; it has no rate).
    public var isFlag: Bool { self == .serverID || self == .gpt0 || self == .gpt || self == .serverKey }

    public static func < (a: StickDataKind, b: StickDataKind) -> Bool { a.rawValue < b.rawValue }
}

/// One `store` item of a table.
public struct StickStoredData: Sendable, Equatable {
    public var kind: StickDataKind
    /// Elements of an array type (1 otherwise).
    public var count: Int
    /// A rate's period, in milliseconds (0 otherwise).
    public var period: Int64

    public init(kind: StickDataKind, count: Int = 1, period: Int64 = 0) {
        self.kind = kind
        self.count = count
        self.period = period
    }
}

/// A `stick-table` line: the table's key type, its size, expiry and the data it stores.
public struct StickTableDefinition: Sendable, Equatable {
    public var name: String
    public var keyType: StickKeyType
    public var size: Int
    /// Milliseconds after the last update an entry expires (nil: never).
    public var expire: Int64?
    /// `nopurge`: a full table refuses new entries instead of evicting the oldest.
    public var noPurge = false
    /// `peers <section>`.
    public var peers: String?
    /// `srvkey addr`: `stick` rules store the server's address instead of its name.
    public var serverKeyByAddress = false
    /// The stored data, in HAProxy's order of data types.
    public var stored: [StickStoredData] = []
    public var location: SourceLocation

    public init(name: String, keyType: StickKeyType, size: Int, location: SourceLocation) {
        self.name = name
        self.keyType = keyType
        self.size = size
        self.location = location
    }

    public func stored(_ kind: StickDataKind) -> StickStoredData? { stored.first { $0.kind == kind } }
}
