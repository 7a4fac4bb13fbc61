/// The models of `peers` and `resolvers` sections.

/// A `peers` section: the nodes sharing its tables, and the tables it declares.
public struct PeersSettings: Sendable, Equatable {
    public var name: String
    public var location: SourceLocation
    public var peers: [PeerSettings] = []
    /// `bind <addr>:<port>` (with `server` lines, the local peer's listener).
    public var bind: String?
    public var disabled = false
    /// `table <name> ...`, named `<section>/<name>`.
    public var tables: [StickTableDefinition] = []
    /// Whether a `peer` or `server` line names the local peer: without one, HAProxy removes
    /// the section (its tables stay, unsynchronised).
    public var hasLocalPeer = false
    /// `shards <n>` (accepted; every peer gets every update).
    public var shards: Int?

    /// The address peers connect to: the `bind` line, or the local `peer` line's address.
    public func listenAddress(localPeer: String) -> String? {
        bind ?? peers.first { $0.name == localPeer }?.address
    }

    /// The other peers, with the address to connect to.
    public func remotePeers(localPeer: String) -> [PeerSettings] {
        peers.filter { $0.name != localPeer }
    }

    /// Whether this process takes part: a local peer, and not `disabled`.
    public var isActive: Bool { hasLocalPeer && !disabled }

    public init(name: String, location: SourceLocation) {
        self.name = name
        self.location = location
    }
}

/// `peer <name> <addr>:<port>` or `server <name> [<addr>:<port>]`.
public struct PeerSettings: Sendable, Equatable {
    public var name: String
    public var address: String?
    public var location: SourceLocation
    public var viaServerKeyword = false

    public init(name: String, address: String?, location: SourceLocation) {
        self.name = name
        self.address = address
        self.location = location
    }
}

/// A `resolvers` section: where DNS questions go and how long answers hold.
public struct ResolversSettings: Sendable, Equatable {
    public struct Nameserver: Sendable, Equatable {
        public var id: String
        public var host: String
        public var port: Int
        /// `tcp@<addr>`: questions over TCP.
        public var overTCP: Bool
        public var location: SourceLocation
    }

    public var name: String
    public var location: SourceLocation
    /// Where the section comes among the others (`show resolvers` lists them in that order;
    /// the implicit `default` section last).
    public var order = 0
    public var nameservers: [Nameserver] = []
    /// `parse-resolv-conf`: the system's name servers too.
    public var parseResolvConf = false
    public var acceptedPayloadSize = 512
    public var resolveRetries = 3
    public var timeoutResolveMs: Int64 = 1_000
    public var timeoutRetryMs: Int64 = 1_000
    /// `hold <event> <time>` (valid, nx, timeout, refused, other, obsolete), in milliseconds.
    public var hold: [String: Int64] = [:]

    public init(name: String, location: SourceLocation) {
        self.name = name
        self.location = location
    }

    /// How long a valid answer is kept before asking again (HAProxy's default: 10 s).
    public var holdValidMs: Int64 { hold["valid"] ?? 10_000 }
    /// How long the last answer survives a failure of the given kind (nx, refused, timeout,
    /// other: 30 s by default), or an SRV record missing from the answers (obsolete: 0).
    public func holdMs(_ event: String) -> Int64 { hold[event] ?? (event == "obsolete" ? 0 : 30_000) }
}

/// `default-path`: where the relative paths of a configuration file start.
public enum DefaultPath: Sendable, Equatable {
    /// The directory the process started in.
    case current
    /// The configuration file's directory.
    case config
    /// Its parent.
    case parent
    case origin(String)

    /// The base for relative paths in `file` (nil: the current directory), as HAProxy derives it:
    /// the file's path up to its last slash (nothing without one), then `/..` for `parent`.
    func base(forFile file: String) -> String? {
        let directory = file.lastIndex(of: "/").map { String(file[..<$0]) } ?? ""
        switch self {
        case .current: return nil
        case .config: return directory.isEmpty ? nil : directory
        case .parent: return directory.isEmpty ? ".." : directory + "/.."
        case .origin(let path): return path
        }
    }
}
