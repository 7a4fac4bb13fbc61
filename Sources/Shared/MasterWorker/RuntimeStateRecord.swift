/// What the CLI changed in a worker, handed to the next worker at a reload: servers added or
/// deleted at run time, forced maintenance and drain, weights, maxconn and addresses. Values
/// the configuration had when they were changed travel along, so that a configuration edit of
/// the same value wins over the runtime change. Entries keep the worker's order (per backend:
/// deletions, then servers), which is the order they apply in.
public struct RuntimeStateRecord: Equatable, Sendable {
    public enum Entry: Equatable, Sendable {
        /// A server of the configuration deleted with `del server`.
        case deleted(backend: String, server: String)
        case server(ServerState)
    }

    public struct ServerState: Equatable, Sendable {
        public var backend: String
        public var name: String
        /// Added with `add server`.
        public var dynamic: Bool
        /// Forced maintenance and drain bits (`ServerAdminState` raw values) still to carry.
        public var adminBits: Int
        public var weight: Int
        public var initialWeight: Int
        public var maxconn: Int
        public var initialMaxconn: Int
        /// The address in force and the one the configuration gave (`ServerAddress` text).
        public var address: String
        public var initialAddress: String
        /// The words `add server` was given, to add it again.
        public var addArguments: [String]

        public init(backend: String, name: String, dynamic: Bool, adminBits: Int, weight: Int, initialWeight: Int,
                    maxconn: Int, initialMaxconn: Int, address: String, initialAddress: String, addArguments: [String]) {
            self.backend = backend
            self.name = name
            self.dynamic = dynamic
            self.adminBits = adminBits
            self.weight = weight
            self.initialWeight = initialWeight
            self.maxconn = maxconn
            self.initialMaxconn = initialMaxconn
            self.address = address
            self.initialAddress = initialAddress
            self.addArguments = addArguments
        }
    }

    /// Where a server of a `resolvers` section stands: the name it goes by now (an SRV
    /// target, a `set server fqdn`) and what that resolved to, so that the next worker does not
    /// start from the configuration's addresses.
    public struct Resolution: Equatable, Sendable {
        public var backend: String
        public var server: String
        /// The configuration's address then (`ServerAddress` text): if it changed, the
        /// resolution starts afresh.
        public var initialAddress: String
        /// The name and port in force (`ServerAddress` text).
        public var hostname: String
        /// The IP it resolved to, or empty.
        public var resolved: String
        /// HAProxy's HMAINT mark: the name was set at run time.
        public var nameChanged: Bool

        public init(backend: String, server: String, initialAddress: String, hostname: String, resolved: String, nameChanged: Bool) {
            self.backend = backend
            self.server = server
            self.initialAddress = initialAddress
            self.hostname = hostname
            self.resolved = resolved
            self.nameChanged = nameChanged
        }
    }

    public var entries: [Entry]
    /// The worker's stick tables, so that a reload keeps rate limits and persistence.
    public var tables: [StickTableSnapshot]
    public var resolutions: [Resolution]

    public init(entries: [Entry] = [], tables: [StickTableSnapshot] = [], resolutions: [Resolution] = []) {
        self.entries = entries
        self.tables = tables
        self.resolutions = resolutions
    }

    public var isEmpty: Bool { entries.isEmpty && tables.isEmpty && resolutions.isEmpty }

    // MARK: - Binary form (protocol 1)

    /// Tags 1 and 2 are the entries; tags 3 and above carry a length-prefixed body (3: a stick
    /// table, 4: a resolution), so that a reader skips the kinds it does not know.
    public func encode(into w: inout WireWriter) {
        w.u32(UInt32(clamping: entries.count + tables.count + resolutions.count))
        for table in tables {
            w.u8(3)
            var body = WireWriter()
            table.encode(into: &body)
            w.data(body.bytes)
        }
        for resolution in resolutions {
            w.u8(4)
            var body = WireWriter()
            body.string(resolution.backend)
            body.string(resolution.server)
            body.string(resolution.initialAddress)
            body.string(resolution.hostname)
            body.string(resolution.resolved)
            body.bool(resolution.nameChanged)
            w.data(body.bytes)
        }
        for entry in entries {
            switch entry {
            case .deleted(let backend, let server):
                w.u8(1)
                w.string(backend)
                w.string(server)
            case .server(let s):
                w.u8(2)
                w.string(s.backend)
                w.string(s.name)
                w.bool(s.dynamic)
                w.int(s.adminBits)
                w.int(s.weight)
                w.int(s.initialWeight)
                w.int(s.maxconn)
                w.int(s.initialMaxconn)
                w.string(s.address)
                w.string(s.initialAddress)
                w.array(s.addArguments) { $0.string($1) }
            }
        }
    }

    public init(from r: inout WireReader) throws(WireError) {
        var entries: [Entry] = []
        var tables: [StickTableSnapshot] = []
        var resolutions: [Resolution] = []
        let count = Int(try r.u32())
        guard count <= r.remaining else { throw .badLength }
        for _ in 0..<count {
            switch try r.u8() {
            case 1:
                entries.append(.deleted(backend: try r.string(), server: try r.string()))
            case 2:
                entries.append(.server(ServerState(
                    backend: try r.string(), name: try r.string(), dynamic: try r.bool(), adminBits: try r.int(),
                    weight: try r.int(), initialWeight: try r.int(), maxconn: try r.int(), initialMaxconn: try r.int(),
                    address: try r.string(), initialAddress: try r.string(),
                    addArguments: try r.array { (r: inout WireReader) throws(WireError) in try r.string() })))
            case 3:
                var body = WireReader(try r.data())
                tables.append(try StickTableSnapshot(from: &body))
                try body.expectEnd()
            case 4:
                var body = WireReader(try r.data())
                resolutions.append(Resolution(backend: try body.string(), server: try body.string(), initialAddress: try body.string(),
                                              hostname: try body.string(), resolved: try body.string(), nameChanged: try body.bool()))
                try body.expectEnd()
            case 0:
                throw .invalid("runtime state entry 0")
            default:
                // A later kind of fact: its body is skipped.
                _ = try r.data()
            }
        }
        self.entries = entries
        self.tables = tables
        self.resolutions = resolutions
    }

    // MARK: - Text form (protocol 0)

    /// Reads the answer of a protocol-0 worker to `_runtime_state`: one tab-separated line per
    /// fact, `D <backend> <server>` or `S` and eleven fields, add arguments joined by U+001F.
    /// Lines of another shape are skipped, as that worker's successor did.
    public init(legacyText text: String) {
        var entries: [Entry] = []
        for line in text.split(separator: "\n") {
            let f = line.split(separator: "\t", omittingEmptySubsequences: false).map(String.init)
            if f.count == 3, f[0] == "D" {
                entries.append(.deleted(backend: f[1], server: f[2]))
                continue
            }
            guard f.count == 12, f[0] == "S", let admin = Int(f[4]), let weight = Int(f[5]), let initialWeight = Int(f[6]),
                  let maxconn = Int(f[7]), let initialMaxconn = Int(f[8]) else { continue }
            let arguments = f[11].isEmpty ? [] : f[11].split(separator: "\u{1f}", omittingEmptySubsequences: false).map(String.init)
            entries.append(.server(ServerState(
                backend: f[1], name: f[2], dynamic: f[3] == "1", adminBits: admin, weight: weight, initialWeight: initialWeight,
                maxconn: maxconn, initialMaxconn: initialMaxconn, address: f[9], initialAddress: f[10], addArguments: arguments)))
        }
        self.entries = entries
        tables = []
        resolutions = []
    }
}
