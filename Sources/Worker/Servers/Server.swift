import Atomics
import NIOConcurrencyHelpers
import NIOCore
import Shared

/// HAProxy's administrative flags of a server (`srv_admin_state`).
public struct ServerAdminState: OptionSet, Sendable {
    public let rawValue: Int
    public init(rawValue: Int) { self.rawValue = rawValue }
    /// Forced maintenance (CLI, or `disabled` in the configuration).
    public static let forcedMaint = ServerAdminState(rawValue: 0x01)
    /// Maintenance inherited from a tracked server.
    public static let inheritedMaint = ServerAdminState(rawValue: 0x02)
    /// Marks a maintenance that came from the configuration (`disabled`).
    public static let configMaint = ServerAdminState(rawValue: 0x04)
    /// Forced drain (CLI).
    public static let forcedDrain = ServerAdminState(rawValue: 0x08)
    public static let inheritedDrain = ServerAdminState(rawValue: 0x10)
    /// Maintenance because the address could not be resolved.
    public static let resolutionMaint = ServerAdminState(rawValue: 0x20)
    /// The name was set at run time, by `set server fqdn` or an SRV record (HAProxy's HMAINT:
    /// a mark, not a maintenance).
    public static let fqdnChanged = ServerAdminState(rawValue: 0x40)

    public var inMaintenance: Bool { !intersection([.forcedMaint, .inheritedMaint, .resolutionMaint]).isEmpty }
    public var draining: Bool { !intersection([.forcedDrain, .inheritedDrain]).isEmpty }
}

/// One server at run time. The configuration it was made from is immutable; what the CLI can
/// change (admin state, weight, maxconn, address) lives in atomics or a lock; counters are
/// atomics updated from every event loop; idle connections live in one pool per event loop
/// (`pools[loopIndex]`), each touched only on its own loop.
public final class Server: Sendable {
    public let settings: ServerSettings
    public let backendName: String
    public let id: Int
    /// True for a server added with `add server`.
    public let isDynamic: Bool
    /// The address and keywords it was added with (to add it again after a reload).
    let addArguments: [String]

    /// Requests being served (or connections, in tcp mode); guarded by the backend's lock for
    /// slot accounting, mirrored here for lock-free reads.
    let served = ManagedAtomic<Int>(0)
    let maxServed = ManagedAtomic<Int>(0)
    let totalSessions = ManagedAtomic<Int>(0)
    let connectAttempts = ManagedAtomic<Int>(0)
    let reuses = ManagedAtomic<Int>(0)
    let connectionErrors = ManagedAtomic<Int>(0)
    let idleConnections = ManagedAtomic<Int>(0)
    /// Idle connections kept by client sessions for their next request.
    let sessionIdleConnections = ManagedAtomic<Int>(0)
    /// Every open connection to the server (in use, idle, held by a session, closing): it
    /// drops only when a connection has really closed.
    let usedConnections = ManagedAtomic<Int>(0)
    let counters = ProxyCounters()

    /// Running, stopping (NOLB) or stopped: what checks (or `set server health`) say.
    public enum OperationalState: Int, Sendable {
        case stopped = 0, starting = 1, running = 2, stopping = 3
    }

    private let admin: ManagedAtomic<Int>
    private let operational: ManagedAtomic<Int>
    private let currentWeight: ManagedAtomic<Int>
    private let currentMaxconn: ManagedAtomic<Int>
    /// Wall-clock second of the last state change (`lastchg`).
    let lastChange = ManagedAtomic<Int>(WallClock.seconds())
    private let address: ManagedAtomic<Snapshot<ServerAddressState>>
    /// Name and address change only from the CLI; every connection and log line reads them,
    /// so they are immutable boxes swapped atomically rather than values behind a lock.
    private let currentName: ManagedAtomic<Snapshot<String>>
    /// Whether `address` resolved, mirrored so that the balancer, which asks every server on
    /// every pick, takes no lock.
    private let hasAddress: ManagedAtomic<Bool>
    /// Set once `del server` removed it: late users still hold it, nobody picks it any more.
    let deleted = ManagedAtomic<Bool>(false)

    let pools: [ServerConnectionPool]

    /// The checks' `addr` and `agent-addr`, resolved once here: a server is built at load or by
    /// `add server`, never on an event loop, and a check must not wait for a resolver there.
    let checkHost: SocketAddress?
    let agentHost: SocketAddress?

    /// The health check (absent without `check`, or when the server tracks another) and the agent.
    /// `ssl` / `check-ssl`: the TLS client context of the server's connections (nil: plain).
    let tls: TLSClientContext?
    /// The context could not be built: connections fail rather than leave in clear text.
    let tlsUnusable: Bool
    /// `sni <expression>`, evaluated per connection in the stream that opens it.
    let sniExpression: SampleExpression?
    /// `source` of the server line, else of the backend; its addresses parsed once: the plain
    /// one (also what checks connect from) and the `usesrc <addr>` one.
    let connectionSource: ConnectionSource?
    let sourceAddress: SocketAddress?
    let foreignSourceAddress: SocketAddress?
    /// Connections that carry one client's identity (a PROXY header, `usesrc client|clientip`)
    /// serve that client only: never pooled for another (HAProxy's private connections).
    let connectionsArePrivate: Bool
    /// `server x 0.0.0.0[:port]` (or `*`, or no host): connect to the address the client
    /// connected to (after `set-dst`), on the server's port, else the client's destination port.
    let forwardsToClientDestination: Bool

    public let healthCheck: ServerCheck?
    public let agentCheck: ServerCheck?
    /// `track`: the server this one follows, and the servers that follow this one.
    private let links = NIOLockedValueBox<(tracked: Server?, trackers: [Server])>((nil, []))
    /// Observed errors in a row (`observe`).
    let consecutiveErrors = ManagedAtomic<Int>(0)
    /// Monotonic millisecond at which the server came up and began its `slowstart`.
    private let warmupBegan = ManagedAtomic<Int>(0)
    /// HAProxy's health value of a server without a health check (`srv_check_health` in `show
    /// servers state`): `rise` at first, 0 once maintenance or the CLI took it down.
    let uncheckedHealth: ManagedAtomic<Int>
    /// Seconds spent down before the current state (`downtime`), and when the last down began.
    let downtimeSeconds = ManagedAtomic<Int>(0)
    let downSince = ManagedAtomic<Int>(0)

    init(settings: ServerSettings, backendName: String, id: Int, loopCount: Int, isDynamic: Bool = false,
         addArguments: [String] = [], global: GlobalSettings = GlobalSettings(), backendSource: ConnectionSource? = nil) {
        self.settings = settings
        connectionSource = settings.source ?? backendSource
        sourceAddress = connectionSource.flatMap { try? SocketAddress(ipAddress: $0.host, port: $0.port) }
        if case .address(let host, let port)? = connectionSource?.transparent {
            foreignSourceAddress = try? SocketAddress(ipAddress: host, port: port)
        } else {
            foreignSourceAddress = nil
        }
        if case .inet(let host, _) = settings.address, host == "0.0.0.0" || host == "::" {
            forwardsToClientDestination = true
        } else {
            forwardsToClientDestination = false
        }
        switch connectionSource?.transparent {
        case .client?, .clientIP?: connectionsArePrivate = true
        // A connection to the client's own destination serves no other client.
        default: connectionsArePrivate = settings.sendProxy != nil || forwardsToClientDestination
        }
        do {
            tls = try TLSClientContext.build(settings.tls, global: global, loops: loopCount)
            tlsUnusable = false
        } catch {
            DiagnosticPrinter.shared.alert("config : 'server \(backendName)/\(settings.name)' : \(error.description).")
            tls = nil
            tlsUnusable = true
        }
        sniExpression = settings.tls.sni.flatMap { try? SampleExpressionParser.parse($0, context: RuleCompilationContext()) }
        self.backendName = backendName
        self.id = id
        self.isDynamic = isDynamic
        self.addArguments = addArguments
        var state: ServerAdminState = settings.disabled ? [.forcedMaint, .configMaint] : []
        // A server added at run time starts in maintenance, as in HAProxy.
        if isDynamic { state.insert(.forcedMaint) }
        // `init-addr` (HAProxy's default: `last,libc`): the first method that gives an address;
        // `none` starts without one. A server whose name resolution gives nothing waits in
        // maintenance for its resolvers (`MAINT (resolution)`).
        let resolved = Self.initialAddress(settings)
        if resolved == nil, settings.resolvers != nil || settings.initAddr != nil, case .inet = settings.address {
            state.insert(.resolutionMaint)
        }
        admin = ManagedAtomic(state.rawValue)
        uncheckedHealth = ManagedAtomic(state.inMaintenance ? 0 : settings.rise)
        // A server in maintenance is stopped, as in HAProxy; leaving maintenance brings it up.
        operational = ManagedAtomic(state.inMaintenance ? OperationalState.stopped.rawValue : OperationalState.running.rawValue)
        currentWeight = ManagedAtomic(settings.weight)
        currentMaxconn = ManagedAtomic(settings.maxconn)
        address = ManagedAtomic(Snapshot(ServerAddressState(configured: settings.address, resolved: resolved)))
        checkHost = settings.checks.address.flatMap { Self.resolve(.inet(host: $0, port: 0)) }
        agentHost = settings.checks.agentAddress.flatMap { Self.resolve(.inet(host: $0, port: 0)) }
        hasAddress = ManagedAtomic(resolved != nil)
        currentName = ManagedAtomic(Snapshot(settings.name))
        var pools: [ServerConnectionPool] = []
        for loop in 0..<loopCount { pools.append(ServerConnectionPool(loopIndex: loop, settings: settings)) }
        self.pools = pools
        // Checks of a server added at run time start disabled, as in HAProxy.
        healthCheck = settings.check && settings.track == nil
            ? ServerCheck(kind: .health, rise: settings.rise, fall: settings.fall, enabled: !isDynamic) : nil
        agentCheck = settings.checks.agent ? ServerCheck(kind: .agent, rise: 1, fall: 1, enabled: !isDynamic) : nil
        // A server that starts in maintenance has its checks paused until it leaves it.
        if state.inMaintenance {
            healthCheck?.update { $0.paused = true; $0.health.markDown() }
        }
    }

    public var tracked: Server? { links.withLockedValue { $0.tracked } }
    var trackers: [Server] { links.withLockedValue { $0.trackers } }
    func track(_ target: Server) {
        links.withLockedValue { $0.tracked = target }
        target.links.withLockedValue { $0.trackers.append(self) }
    }
    /// Unlinks a deleted tracker from the server it followed.
    func untrack() {
        guard let target = links.withLockedValue({ l -> Server? in defer { l.tracked = nil }; return l.tracked }) else { return }
        target.links.withLockedValue { $0.trackers.removeAll { $0 === self } }
    }

    /// Whether the server is checked at all (by itself or through the server it tracks).
    public var isChecked: Bool {
        if let check = healthCheck, check.isEnabled { return true }
        if let check = agentCheck, check.isEnabled { return true }
        return tracked?.isChecked ?? false
    }

    /// The weight the balancer uses: during `slowstart`, a share of the weight growing with the
    /// time since the server came up.
    public var effectiveWeight: Int {
        let weight = self.weight
        guard operationalState == .starting, settings.checks.slowstartMs > 0, weight > 0 else { return weight }
        let slow = Int(settings.checks.slowstartMs)
        let elapsed = MonotonicClock.milliseconds() - warmupBegan.load(ordering: .relaxed)
        guard elapsed < slow else { return weight }
        return max(1, (weight * max(0, elapsed) + slow - 1) / slow)
    }

    /// The percentage of the weight in use (`throttle`), or nil outside slow start.
    var throttlePercent: Int? {
        guard operationalState == .starting, settings.checks.slowstartMs > 0 else { return nil }
        let elapsed = MonotonicClock.milliseconds() - warmupBegan.load(ordering: .relaxed)
        return min(100, max(0, elapsed * 100 / Int(settings.checks.slowstartMs)))
    }

    func beginWarmup() { warmupBegan.store(MonotonicClock.milliseconds(), ordering: .relaxed) }

    /// The address at start by `init-addr`: `libc` (the system's resolver), `<ip>`, `none`;
    /// `last` (the server state file) applies later, like the state file itself.
    static func initialAddress(_ settings: ServerSettings) -> SocketAddress? {
        guard let methods = settings.initAddr else { return resolve(settings.address) }
        for method in methods {
            switch method {
            case "none":
                return nil
            case "libc":
                if let found = resolve(settings.address) { return found }
            case "last":
                continue
            default:
                let port: Int
                if case .inet(_, let p) = settings.address { port = p ?? 0 } else { port = 0 }
                if let ip = try? SocketAddress(ipAddress: method, port: port) { return ip }
            }
        }
        return nil
    }

    /// Names are resolved once, as HAProxy does without `resolvers`.
    static func resolve(_ address: ServerAddress) -> SocketAddress? {
        switch address {
        case .inet(let host, let port):
            return (try? SocketAddress(ipAddress: host, port: port ?? 0))
                ?? (try? SocketAddress.makeAddressResolvingHost(host, port: port ?? 0))
        case .unix(let path):
            return try? SocketAddress(unixDomainSocketPath: path)
        case .none:
            return nil
        }
    }

    public var name: String { currentName.load(ordering: .acquiring).value }
    /// `set server <b>/<s> name`.
    func rename(_ value: String) { currentName.store(Snapshot(value), ordering: .releasing) }
    public var isBackup: Bool { settings.backup }
    public var weight: Int { currentWeight.load(ordering: .relaxed) }
    public var maxconn: Int { currentMaxconn.load(ordering: .relaxed) }
    public var adminState: ServerAdminState { ServerAdminState(rawValue: admin.load(ordering: .relaxed)) }
    public var socketAddress: SocketAddress? { address.load(ordering: .acquiring).value.resolved }
    public var configuredAddress: ServerAddress { address.load(ordering: .acquiring).value.configured }
    /// Not stopped, in HAProxy's sense: up (or starting, or draining), so persistence still
    /// sends it the clients that stick to it.
    public var isRunning: Bool {
        let op = operationalState
        return !adminState.inMaintenance && (op == .running || op == .starting)
            && hasAddress.load(ordering: .relaxed) && !deleted.load(ordering: .relaxed)
    }

    /// The persistence cookie value naming this server: its `cookie` setting, or while the
    /// backend makes dynamic cookies (`dynamicKey`), the XXH64 of the key, the server's address
    /// and port (the port as 4 bytes in network order), in 16 hex digits, as HAProxy derives it.
    public func persistenceCookie(dynamicKey: String?) -> String? {
        if let value = settings.cookie { return value }
        guard let dynamicKey, let address = socketAddress else { return nil }
        var bytes = Array(dynamicKey.utf8)
        let port: Int
        switch address {
        case .v4(let a):
            withUnsafeBytes(of: a.address.sin_addr.s_addr) { bytes.append(contentsOf: $0) }
            port = address.port ?? 0
        case .v6(let a):
            withUnsafeBytes(of: a.address.sin6_addr) { bytes.append(contentsOf: $0) }
            port = address.port ?? 0
        default:
            return nil
        }
        bytes.append(contentsOf: [UInt8(truncatingIfNeeded: port >> 24), UInt8(truncatingIfNeeded: port >> 16),
                                  UInt8(truncatingIfNeeded: port >> 8), UInt8(truncatingIfNeeded: port)])
        let hash = String(XXH64.hash(bytes), radix: 16)
        return String(repeating: "0", count: 16 - hash.count) + hash
    }

    /// May take new traffic from the balancer.
    public var isUsable: Bool {
        let state = adminState
        let op = operationalState
        return !state.inMaintenance && !state.draining && (op == .running || op == .starting) && weight > 0
            && hasAddress.load(ordering: .relaxed)
            && !deleted.load(ordering: .relaxed)
    }
    /// May keep idle connections (not in maintenance, not deleted).
    var keepsIdleConnections: Bool { !adminState.inMaintenance && !deleted.load(ordering: .relaxed) }
    public var currentServed: Int { served.load(ordering: .relaxed) }
    public var currentIdle: Int { idleConnections.load(ordering: .relaxed) }

    /// Applies `change` to the admin flags; returns the state before and after.
    @discardableResult
    func updateAdmin(_ change: (inout ServerAdminState) -> Void) -> (before: ServerAdminState, after: ServerAdminState) {
        while true {
            let raw = admin.load(ordering: .relaxed)
            var state = ServerAdminState(rawValue: raw)
            let before = state
            change(&state)
            if admin.compareExchange(expected: raw, desired: state.rawValue, ordering: .relaxed).exchanged {
                if before != state { lastChange.store(WallClock.seconds(), ordering: .relaxed) }
                return (before, state)
            }
        }
    }

    public var operationalState: OperationalState {
        OperationalState(rawValue: operational.load(ordering: .relaxed)) ?? .running
    }

    /// Returns the state it replaced.
    @discardableResult
    func setOperationalState(_ value: OperationalState) -> OperationalState {
        let old = operational.exchange(value.rawValue, ordering: .relaxed)
        if old != value.rawValue {
            let now = WallClock.seconds()
            lastChange.store(now, ordering: .relaxed)
            if value == .stopped {
                downSince.store(now, ordering: .relaxed)
                // `chkdown` counts every transition to DOWN (checks, CLI, maintenance).
                healthCheck?.update { $0.downs += 1 }
            } else if old == OperationalState.stopped.rawValue {
                let since = downSince.exchange(0, ordering: .relaxed)
                if since > 0 { downtimeSeconds.wrappingIncrement(by: max(0, now - since), ordering: .relaxed) }
            }
        }
        return OperationalState(rawValue: old) ?? .running
    }

    /// `downtime`: seconds down so far, including the current down period.
    var downtime: Int {
        let since = downSince.load(ordering: .relaxed)
        return downtimeSeconds.load(ordering: .relaxed) + (since > 0 ? max(0, WallClock.seconds() - since) : 0)
    }

    func setWeight(_ value: Int) { currentWeight.store(value, ordering: .relaxed) }
    func setMaxconn(_ value: Int) { currentMaxconn.store(value, ordering: .relaxed) }

    /// What the server's name resolves to now (its configured name and port stay); true when
    /// that changed.
    func setResolvedAddress(_ resolved: SocketAddress?) -> Bool {
        let current = address.load(ordering: .acquiring).value
        if current.resolved == resolved { return false }
        address.store(Snapshot(ServerAddressState(configured: current.configured, resolved: resolved)), ordering: .releasing)
        hasAddress.store(resolved != nil, ordering: .relaxed)
        return true
    }

    /// A new name to resolve (an SRV target, `set server fqdn`) and what it resolved to so far;
    /// true when the resolved address changed.
    func setResolution(hostname: ServerAddress, resolved: SocketAddress?) -> Bool {
        let current = address.load(ordering: .acquiring).value
        address.store(Snapshot(ServerAddressState(configured: hostname, resolved: resolved)), ordering: .releasing)
        hasAddress.store(resolved != nil, ordering: .relaxed)
        return current.resolved != resolved
    }

    func setAddress(_ value: ServerAddress) {
        let resolved = Self.resolve(value)
        address.store(Snapshot(ServerAddressState(configured: value, resolved: resolved)), ordering: .releasing)
        hasAddress.store(resolved != nil, ordering: .relaxed)
    }
}

/// A server's address as configured and as resolved (when it resolved).
struct ServerAddressState: Sendable {
    var configured: ServerAddress
    var resolved: SocketAddress?
}

/// An immutable value that can be replaced atomically (`ManagedAtomic<Snapshot<T>>`): readers
/// never wait, writers publish a new box.
final class Snapshot<Value: Sendable>: AtomicReference, Sendable {
    let value: Value
    init(_ value: Value) { self.value = value }
}
