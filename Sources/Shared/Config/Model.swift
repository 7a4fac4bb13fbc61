/// The parsed configuration. Plain values: the master and every worker build the same model
/// from the same bytes.
public struct Configuration: Sendable, Equatable {
    public var global = GlobalSettings()
    public var proxies: [ProxySettings] = []
    /// Named `defaults` sections, kept for `from` references.
    public var namedDefaults: [String: ProxySettings] = [:]
    /// Files in load order, as given on the command line (for messages).
    public var files: [String] = []
    /// `userlist` sections.
    public var userlists: [String: Userlist] = [:]
    /// `http-errors` sections: their pages by status.
    public var httpErrors: [String: [Int: [UInt8]]] = [:]
    /// `ring` sections.
    public var rings: [String: RingSettings] = [:]
    /// The map and pattern files the rules loaded.
    public var patternFiles = PatternFileStore()
    /// `peers` sections, by name.
    public var peers: [String: PeersSettings] = [:]
    /// `resolvers` sections, by name.
    public var resolvers: [String: ResolversSettings] = [:]
    /// This process's name among peers: `-L`, else `localpeer`, else the host name.
    public var localPeer = LogDate.hostname

    public init() {}

    /// Every stick table: the proxies' (named after them) and the `peers` sections' tables
    /// (named `<peers>/<table>`), in declaration order.
    public var stickTables: [StickTableDefinition] {
        proxies.compactMap(\.stickTable) + peers.values.sorted { $0.location.line < $1.location.line }.flatMap(\.tables)
    }

    /// The listening address of each `peers` section this process takes part in.
    public var peersListeners: [(section: String, address: ListenAddress)] {
        peers.values.sorted { $0.location.line < $1.location.line }.compactMap { section in
            guard section.isActive, let text = section.listenAddress(localPeer: localPeer),
                  let address = try? AddressParser.listenAddresses(text).first else { return nil }
            return (section.name, address)
        }
    }

    /// The name under which a `peers` section's listener is passed to workers.
    public static func peersListenerName(_ section: String) -> String { "#peers:\(section)" }

    public func proxy(named name: String) -> ProxySettings? {
        proxies.first { $0.name == name }
    }

    public var frontends: [ProxySettings] { proxies.filter { $0.capabilities.contains(.frontend) } }
    public var backends: [ProxySettings] { proxies.filter { $0.capabilities.contains(.backend) } }
}

/// Where a keyword came from, for messages.
public struct SourceLocation: Sendable, Equatable, CustomStringConvertible {
    public var file: String
    public var line: Int
    public init(file: String, line: Int) {
        self.file = file
        self.line = line
    }
    public var description: String { "\(file):\(line)" }
}

public struct GlobalSettings: Sendable, Equatable {
    public var maxconn: Int? = nil
    public var nbthread: Int? = nil
    public var threadGroups: Int? = nil
    public var pidfile: String? = nil
    public var daemon = false
    public var quiet = false
    public var zeroWarning = false
    public var logTargets: [LogTarget] = []
    public var statsSockets: [StatsSocketSettings] = []
    public var statsTimeoutMs: Int64 = 10_000
    public var hardStopAfterMs: Int64? = nil
    public var mworkerMaxReloads: Int = 50
    public var noExitOnFailure = false
    public var user: String? = nil
    public var group: String? = nil
    public var chroot: String? = nil
    /// `setcap`: the capabilities workers keep once they run as `user` (none otherwise).
    public var capabilities: [Capability] = []
    public var bufferSize: Int = 16_384
    /// `tune.vars.<scope>-max-size`: the memory the variables of one scope may use (absent:
    /// unlimited).
    public var variableLimits: [VariableScope: Int] = [:]
    /// `set-var` / `set-var-fmt`: `proc.` variables set at start, in order.
    public var variables: [GlobalVariableSetting] = []
    public var maxRewrite: Int = 1_024
    /// Hasp extension: hand idle keep-alive client connections to the new worker on reload.
    public var idleConnectionHandover = true
    /// `server-state-file` and `server-state-base`.
    public var serverStateFile: String? = nil
    public var serverStateBase: String? = nil
    /// Hasp extension: servers added, deleted or changed at run time survive a reload.
    public var runtimeStateHandoff = true
    /// `spread-checks <0..50>`: the percentage by which check intervals are randomly spread.
    public var spreadChecks = 0
    /// `log-send-hostname [<name>]`: the host name RFC 3164 lines carry (none by default).
    public var logHostname: String? = nil
    /// `log-tag`: the program name in syslog lines.
    public var logTag = "hasp"
    /// `node` and `description`: shown on the statistics page.
    public var node: String? = nil
    public var processDescription: String? = nil
    /// `master-worker` in the global section: the same as -W.
    public var masterWorker = false
    /// `tune.http.maxhdr`: a head with this many header lines or more is refused.
    public var maxHeaders = 101
    /// `ssl-server-verify`: recorded for the TLS layer (Hasp has no TLS to servers yet).
    public var sslServerVerifyRequired = true
    /// `ssl-default-*`, `ca-base`, `crt-base`, `tune.ssl.*`.
    public var tls = GlobalTLSSettings()
    /// `max-spread-checks`: the longest window over which the first checks are spread.
    public var maxSpreadChecksMs: Int64? = nil
    /// `unix-bind`: defaults for UNIX socket listeners.
    public var unixBind = UnixBindSettings()

    public init() {}
}

/// `unix-bind`: a prefix for relative UNIX socket paths, and the mode and owner they get.
public struct UnixBindSettings: Sendable, Equatable {
    public var prefix: String? = nil
    public var mode: UInt32? = nil
    public var user: String? = nil
    public var group: String? = nil
    public init() {}
}

/// One `log` line: where (`/dev/log`, `127.0.0.1:514`, `stdout`...), with which facility,
/// up to which level (and capped at `minLevel`), in which format.
/// A `ring` section: an in-memory buffer of log lines (`log ring@<name>`, `show events`).
public struct RingSettings: Sendable, Equatable {
    public var name: String
    public var description: String?
    /// The format of the lines it keeps (`raw` unless told).
    public var format = "raw"
    /// `maxlen`: lines are cut to this length.
    public var maxLength: Int?
    /// `size`: the bytes it keeps; the oldest lines go first.
    public var size = 16_384
    public init(name: String) { self.name = name }
}

public struct LogTarget: Sendable, Equatable {
    public var address: String
    public var facility: String?
    public var level: String?
    public var minLevel: String? = nil
    public var format: String?
    /// `len <n>`: longest line sent (HAProxy's default is 1024 bytes).
    public var length: Int? = nil
    public init(address: String, facility: String? = nil, level: String? = nil, format: String? = nil) {
        self.address = address
        self.facility = facility
        self.level = level
        self.format = format
    }

    public static let facilities = ["kern", "user", "mail", "daemon", "auth", "syslog", "lpr", "news", "uucp", "cron",
                                    "auth2", "ftp", "ntp", "audit", "alert", "cron2", "local0", "local1", "local2",
                                    "local3", "local4", "local5", "local6", "local7"]
    public static let levels = ["emerg", "alert", "crit", "err", "warning", "notice", "info", "debug"]
    public static let formats = ["rfc3164", "rfc5424", "short", "raw", "priority", "iso", "timed", "local"]
}

public struct StatsSocketSettings: Sendable, Equatable {
    public var address: ListenAddress
    /// HAProxy's default for `stats socket` is operator.
    public var level: String = "operator"
    public var mode: UInt32? = nil
    public var user: String? = nil
    public var group: String? = nil
    public var exposeFdListeners = false
    public var location: SourceLocation
    public init(address: ListenAddress, location: SourceLocation) {
        self.address = address
        self.location = location
    }
}

public enum ProxyMode: String, Sendable, Equatable {
    case tcp, http
}

public struct ProxyCapabilities: OptionSet, Sendable, Equatable, Hashable {
    public let rawValue: UInt8
    public init(rawValue: UInt8) { self.rawValue = rawValue }
    public static let frontend = ProxyCapabilities(rawValue: 1)
    public static let backend = ProxyCapabilities(rawValue: 2)
    public static let defaults = ProxyCapabilities(rawValue: 4)
}

public enum ProxyKind: String, Sendable, Equatable {
    case defaults, frontend, backend, listen

    public var capabilities: ProxyCapabilities {
        switch self {
        case .defaults: return [.defaults, .frontend, .backend]
        case .frontend: return [.frontend]
        case .backend: return [.backend]
        case .listen: return [.frontend, .backend]
        }
    }
}

/// HAProxy's connection-mode options for HTTP: the last one given wins.
public enum HTTPConnectionMode: Sendable, Equatable {
    case keepAlive, serverClose, close
}

public enum HTTPReuse: String, Sendable, Equatable {
    case never, safe, aggressive, always
}

public struct Timeouts: Sendable, Equatable {
    public var connect: Int64? = nil
    public var client: Int64? = nil
    public var server: Int64? = nil
    public var httpRequest: Int64? = nil
    public var httpKeepAlive: Int64? = nil
    public var queue: Int64? = nil
    public var tunnel: Int64? = nil
    public var clientFin: Int64? = nil
    public var serverFin: Int64? = nil
    public var check: Int64? = nil
    /// `timeout tarpit`: how long a tarpitted request is held (else `timeout connect`).
    public var tarpit: Int64? = nil
    public init() {}

    /// HAProxy's turn-around pause before a retry on the same server: min(`timeout connect`, 1 s).
    public var retryPauseMs: Int64 { min(connect.flatMap { $0 > 0 ? $0 : nil } ?? 1_000, 1_000) }
}

public enum BalanceAlgorithm: Sendable, Equatable {
    case roundRobin
    case staticRoundRobin
    case leastConnections
    case first
    case source
    case random(draws: Int)
    case uri(depth: Int?, length: Int?, wholeURI: Bool)
    case header(name: String, useDomainOnly: Bool)

    /// HAProxy's name for the algorithm, as `show stat` prints it.
    public var name: String {
        switch self {
        case .roundRobin: return "roundrobin"
        case .staticRoundRobin: return "static-rr"
        case .leastConnections: return "leastconn"
        case .first: return "first"
        case .source: return "source"
        case .random: return "random"
        case .uri: return "uri"
        case .header: return "hdr"
        }
    }
}

public enum HashType: Sendable, Equatable {
    case mapBased, consistent
}

public struct ProxyOptions: Sendable, Equatable {
    public var redispatch = false
    /// `option persist`: a request that sticks to a down server still goes to it.
    public var persist = false
    public var httpLog = false
    /// Where `option httplog` was set (a TCP frontend falls back to tcplog with a warning).
    public var httpLogLocation: SourceLocation? = nil
    public var tcpLog = false
    public var forwardFor = false
    public var forwardForHeader = "X-Forwarded-For"
    /// `option forwardfor except <network>`: clients there get no header.
    public var forwardForExcept: IPNetwork? = nil
    /// `option forwardfor if-none`: only when the request has no such header yet.
    public var forwardForIfNone = false
    /// `option http-buffer-request`: the request body is read before rules and routing.
    public var bufferRequest = false
    /// `option http-restrict-req-hdr-names`: what happens to request headers whose name has a
    /// character outside `[A-Za-z0-9-]`, after the proxy's `http-request` rules.
    public var requestHeaderNames = HeaderNamePolicy.preserve
    /// `option originalto [except <network>] [header <name>]`: the address the client
    /// connected to, for the server.
    public var originalTo = false
    public var originalToHeader = "X-Original-To"
    public var originalToExcept: IPNetwork? = nil
    public var dontLogNull = false
    /// `option dontlog-normal`: only exchanges that show a problem are logged.
    public var dontLogNormal = false
    public var idleCloseOnResponse = false
    public var logHealthChecks = false
    /// `option log-separate-errors`: traffic lines that show a problem go out at `err`.
    public var logSeparateErrors = false
    public var allBackups = false
    public var connectionMode: HTTPConnectionMode = .keepAlive
    public init() {}
}

/// The PROXY protocol's two forms.
public enum ProxyProtocolVersion: Sendable, Equatable {
    case v1, v2
}

public struct ServerSettings: Sendable, Equatable {
    public var name: String
    public var address: ServerAddress
    public var weight = 1
    /// `source` on the server line (wins over the backend's).
    public var source: ConnectionSource? = nil
    /// `send-proxy` / `send-proxy-v2`: connections start with a PROXY protocol header.
    public var sendProxy: ProxyProtocolVersion? = nil
    public var maxconn = 0
    public var maxqueue = 0
    public var backup = false
    public var disabled = false
    public var check = false
    public var interMs: Int64 = 2_000
    public var rise = 2
    public var fall = 3
    public var poolMaxConn = -1
    public var poolPurgeDelayMs: Int64 = 5_000
    public var poolLowConn = 0
    public var maxReuse = -1
    /// `track [<backend>/]<server>`: the server follows that server's health instead of being
    /// checked itself; the tracked server cannot be deleted at run time.
    public var track: String? = nil
    /// `cookie <value>`: the persistence cookie value naming this server.
    public var cookie: String? = nil
    /// `resolvers <section>`: the name is resolved again at run time.
    public var resolvers: String? = nil
    /// `init-addr last,libc,none,<ip>`: how the address is found at start.
    public var initAddr: [String]? = nil
    /// `resolve-prefer ipv4|ipv6`.
    public var resolvePrefer: String? = nil
    /// `resolve-net <net>[,...]`: addresses in these networks are preferred.
    public var resolveNets: [IPNetwork] = []
    /// `resolve-opts allow-dup-ip`: the server may take an address another server of the
    /// backend resolving the same name already has (by default it may not).
    public var resolveAllowDuplicateIP = false
    /// `resolve-opts ignore-weight`: SRV weights leave the server's weight alone.
    public var resolveIgnoreWeight = false
    /// The slot of a `server-template` line (0 for its first server).
    public var templateIndex: Int? = nil
    public var checks = ServerCheckSettings()
    /// `proto <mux>`.
    public var proto: String? = nil
    public var id: Int? = nil
    /// `ssl` and the other TLS keywords.
    public var tls = ServerTLSSettings()
    public var location: SourceLocation

    public init(name: String, address: ServerAddress, location: SourceLocation) {
        self.name = name
        self.address = address
        self.location = location
    }
}

/// Template values from `default-server`, applied to each later `server` line; named
/// instances (`default-server name <n>`) serve `from srv:<n>`.
public struct DefaultServerSettings: Sendable, Equatable {
    public var template: ServerSettings
    /// Whether an unnamed `default-server` line was given (`show default-server` lists it).
    public var isDeclared = false
    public var named: [String: ServerSettings] = [:]
    public init() {
        template = Self.fresh
    }

    /// The documented defaults (`from none`).
    public static var fresh: ServerSettings {
        ServerSettings(name: "", address: .none, location: SourceLocation(file: "", line: 0))
    }
}

public enum ServerAddress: Sendable, Equatable, CustomStringConvertible {
    case none
    case inet(host: String, port: Int?)
    case unix(path: String)

    public var description: String {
        switch self {
        case .none: return "-"
        case .inet(let host, let port):
            let h = host.contains(":") ? "[\(host)]" : host
            return port.map { "\(h):\($0)" } ?? h
        case .unix(let path): return path
        }
    }
}

/// `errorfiles <name> [<code>...]` in a proxy.
public struct ErrorFileImport: Sendable, Equatable {
    public var section: String
    /// Empty: every page of the section.
    public var codes: [Int]
    public var location: SourceLocation
}

public enum ServerStateSource: String, Sendable, Equatable {
    case none, global, local
}

/// Everything rule-related a proxy declares: ACLs, `http-request`/`http-response`/
/// `http-after-response`/`tcp-request`/`tcp-response` rules, routing and captures, compiled at
/// load. Compared by where each rule was declared (compiled rules hold closures).
public struct ProxyRules: Sendable, Equatable {
    public var acls: [String: NamedACL] = [:]
    public var httpRequest: [HTTPRule] = []
    public var httpResponse: [HTTPRule] = []
    public var httpAfterResponse: [HTTPRule] = []
    public var tcpRequest: [TCPRule] = []
    public var tcpResponse: [TCPRule] = []
    /// `tcp-request inspect-delay` / `tcp-response inspect-delay`, in milliseconds.
    public var inspectDelay: Int64? = nil
    public var responseInspectDelay: Int64? = nil
    public var useBackends: [BackendSwitchRule] = []
    public var useServers: [ServerSwitchRule] = []
    /// `stick match|on|store-request|store-response`.
    public var stickRules: [StickRule] = []
    /// `force-persist` / `ignore-persist`.
    public var persistRules: [PersistRule] = []
    /// `monitor-uri` and `monitor fail` conditions.
    public var monitorURI: String? = nil
    public var monitorFail: [RuleCondition] = []
    /// `capture request header <name> len <n>` / `capture response header`, in slot order,
    /// followed by the slots `http-request capture ... len` declares.
    public var requestCaptures: [(name: String?, length: Int)] = []
    public var responseCaptures: [(name: String?, length: Int)] = []

    public init() {}

    public var isEmpty: Bool {
        httpRequest.isEmpty && httpResponse.isEmpty && httpAfterResponse.isEmpty && tcpRequest.isEmpty
            && tcpResponse.isEmpty && useBackends.isEmpty && useServers.isEmpty && monitorURI == nil && stickRules.isEmpty
    }

    private var signature: [String] {
        httpRequest.map { "rq\($0.location)" } + httpResponse.map { "rs\($0.location)" }
            + httpAfterResponse.map { "ar\($0.location)" } + tcpRequest.map { "tq\($0.location)" }
            + tcpResponse.map { "ts\($0.location)" } + useBackends.map { "ub\($0.location)" }
            + useServers.map { "us\($0.location)" } + stickRules.map { "st\($0.location)" } + persistRules.map { "pe\($0.location)" } + acls.keys.sorted()
            + [monitorURI ?? "", String(monitorFail.count), String(inspectDelay ?? -1)]
            + requestCaptures.map { "\($0.name ?? "")/\($0.length)" } + responseCaptures.map { "\($0.name ?? "")/\($0.length)" }
    }

    public static func == (a: ProxyRules, b: ProxyRules) -> Bool { a.signature == b.signature }
}

public struct BindSettings: Sendable, Equatable {
    public var addresses: [ListenAddress]
    public var name: String? = nil
    public var maxconn: Int? = nil
    public var backlog: Int? = nil
    public var acceptProxy = false
    /// `transparent`: the address may be one this host does not own (IP_TRANSPARENT, for
    /// TPROXY setups; the master binds as root). `freebind`: the same without the privilege
    /// (IP_FREEBIND: an address that is not configured yet).
    public var transparent = false
    public var freebind = false
    public var unixMode: UInt32? = nil
    public var unixUser: String? = nil
    public var unixGroup: String? = nil
    /// `ssl` and the other TLS keywords.
    public var tls = BindTLSSettings()
    /// The address argument as written (messages, `show ssl crt-list`).
    public var text = ""
    public var location: SourceLocation

    public init(addresses: [ListenAddress], location: SourceLocation) {
        self.addresses = addresses
        self.location = location
    }
}

/// What a proxy's traffic log lines look like, and its unique request IDs.
public struct ProxyLogSettings: Sendable, Equatable {
    /// Where the format comes from (the last of `option httplog|httpslog|tcplog` and
    /// `log-format` wins).
    public enum Kind: Sendable, Equatable { case http, httpCLF, https, tcp, custom }
    public var kind: Kind = .custom
    /// The line of each exchange or session; nil: HAProxy's "Connect from" line at accept.
    public var format: LogFormatString? = nil
    /// `log-format-sd`: the structured-data part of RFC 5424 lines.
    public var structuredData: LogFormatString? = nil
    /// `error-log-format`: accepted (it applies to TLS handshake errors).
    public var errorFormat: LogFormatString? = nil
    /// `unique-id-format` and `unique-id-header`.
    public var uniqueIDFormat: LogFormatString? = nil
    public var uniqueIDHeader: String? = nil
    /// `log-tag` of the proxy (else the global one).
    public var tag: String? = nil

    public init() {}

    private var signature: [String] {
        [String(describing: kind), format?.source ?? "-", structuredData?.source ?? "-", errorFormat?.source ?? "-",
         uniqueIDFormat?.source ?? "-", uniqueIDHeader ?? "-", tag ?? "-"]
    }

    public static func == (a: ProxyLogSettings, b: ProxyLogSettings) -> Bool { a.signature == b.signature }
}

public struct ProxySettings: Sendable, Equatable {
    public var kind: ProxyKind
    public var name: String
    public var location: SourceLocation
    public var mode: ProxyMode = .tcp
    public var binds: [BindSettings] = []
    public var defaultBackend: String? = nil
    /// Where `default_backend` was set (for messages about it).
    public var defaultBackendLocation: SourceLocation? = nil
    public var servers: [ServerSettings] = []
    public var defaultServer = DefaultServerSettings()
    /// `source`: the local address of connections to this backend's servers.
    public var source: ConnectionSource? = nil
    public var balance: BalanceAlgorithm = .roundRobin
    public var hashType: HashType = .mapBased
    /// `hash-balance-factor <f>`: with consistent hashing, no server takes more than `f`% of
    /// the average load (0: off).
    public var hashBalanceFactor = 0
    public var timeouts = Timeouts()
    public var maxconn: Int? = nil
    public var retries = 3
    public var options = ProxyOptions()
    public var httpReuse: HTTPReuse = .safe
    public var rules = ProxyRules()
    /// The kinds of request rules declared so far (for HAProxy's "will still be processed
    /// before" warnings).
    var declaredRuleKinds: Set<RuleKindOrder> = []
    /// The HTTP rule lists whose last rule is final and unconditional (HAProxy warns that the
    /// rules after it are useless).
    var closedRuleStages: Set<RuleStage> = []
    public var disabled = false
    public var id: Int = 0
    /// `load-server-state-from-file global|local|none` and `server-state-file-name`.
    public var loadServerState: ServerStateSource = .none
    public var serverStateFileName: String? = nil
    public var checks = ProxyCheckSettings()
    /// `errorfile <code> <file>`: whole HTTP responses that replace the built-in ones.
    public var errorFiles: [Int: [UInt8]] = [:]
    /// `errorfiles <http-errors section> [<code>...]`, resolved once every section is read.
    public var errorFileSections: [ErrorFileImport] = []
    /// `log global` (use the global targets) and the proxy's own `log` lines.
    public var logGlobal = false
    public var logTargets: [LogTarget] = []
    /// Log formats, unique IDs and the proxy's syslog tag.
    public var logging = ProxyLogSettings()
    /// The statistics page (`stats ...`), nil when the proxy serves none.
    public var stats: StatsSettings? = nil
    /// Whether `stats` is this section's own (a first `stats` line replaces inherited ones).
    public var statsDeclaredHere = false
    /// `description <text>`.
    public var proxyDescription: String? = nil
    /// `stick-table ...`: the proxy's table, named after it.
    public var stickTable: StickTableDefinition? = nil
    /// `cookie ...`: cookie persistence.
    public var cookie: CookieSettings? = nil
    /// `dynamic-cookie-key`: what `cookie ... dynamic` hashes servers' addresses with.
    public var dynamicCookieKey: String? = nil

    public init(kind: ProxyKind, name: String, location: SourceLocation) {
        self.kind = kind
        self.name = name
        self.location = location
    }

    public var capabilities: ProxyCapabilities { kind.capabilities }

    /// A new section of `kind` that inherits everything a `defaults` section may set.
    public func inherit(as kind: ProxyKind, name: String, location: SourceLocation) -> ProxySettings {
        var copy = self
        copy.kind = kind
        copy.name = name
        copy.location = location
        copy.binds = []
        copy.servers = []
        // Only a named defaults section can hold rules; a proxy built `from` it runs them first.
        copy.rules.useBackends = []
        copy.statsDeclaredHere = false
        copy.proxyDescription = nil
        copy.stickTable = nil
        copy.disabled = false
        copy.id = 0
        copy.checks.inheritedHTTPSteps = !checks.httpSteps.isEmpty
        copy.checks.inheritedTCPSteps = !checks.tcpSteps.isEmpty
        return copy
    }
}
