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
    private let operational = ManagedAtomic<Int>(OperationalState.running.rawValue)
    private let currentWeight: ManagedAtomic<Int>
    private let currentMaxconn: ManagedAtomic<Int>
    /// Wall-clock second of the last state change (`lastchg`).
    let lastChange = ManagedAtomic<Int>(WallClock.seconds())
    private let address: NIOLockedValueBox<(ServerAddress, SocketAddress?)>
    private let currentName: NIOLockedValueBox<String>
    /// Whether `address` resolved, mirrored so that the balancer, which asks every server on
    /// every pick, takes no lock.
    private let hasAddress: ManagedAtomic<Bool>
    /// Set once `del server` removed it: late users still hold it, nobody picks it any more.
    let deleted = ManagedAtomic<Bool>(false)

    let pools: [ServerConnectionPool]

    init(settings: ServerSettings, backendName: String, id: Int, loopCount: Int, isDynamic: Bool = false,
         addArguments: [String] = []) {
        self.settings = settings
        self.backendName = backendName
        self.id = id
        self.isDynamic = isDynamic
        self.addArguments = addArguments
        var state: ServerAdminState = settings.disabled ? [.forcedMaint, .configMaint] : []
        // A server added at run time starts in maintenance, as in HAProxy.
        if isDynamic { state.insert(.forcedMaint) }
        admin = ManagedAtomic(state.rawValue)
        currentWeight = ManagedAtomic(settings.weight)
        currentMaxconn = ManagedAtomic(settings.maxconn)
        let resolved = Self.resolve(settings.address)
        address = NIOLockedValueBox((settings.address, resolved))
        hasAddress = ManagedAtomic(resolved != nil)
        currentName = NIOLockedValueBox(settings.name)
        var pools: [ServerConnectionPool] = []
        for loop in 0..<loopCount { pools.append(ServerConnectionPool(loopIndex: loop, settings: settings)) }
        self.pools = pools
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

    public var name: String { currentName.withLockedValue { $0 } }
    /// `set server <b>/<s> name`.
    func rename(_ value: String) { currentName.withLockedValue { $0 = value } }
    public var isBackup: Bool { settings.backup }
    public var weight: Int { currentWeight.load(ordering: .relaxed) }
    public var maxconn: Int { currentMaxconn.load(ordering: .relaxed) }
    public var adminState: ServerAdminState { ServerAdminState(rawValue: admin.load(ordering: .relaxed)) }
    public var socketAddress: SocketAddress? { address.withLockedValue { $0.1 } }
    public var configuredAddress: ServerAddress { address.withLockedValue { $0.0 } }
    /// May take new traffic from the balancer.
    public var isUsable: Bool {
        let state = adminState
        return !state.inMaintenance && !state.draining && operationalState == .running && weight > 0
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

    func setOperationalState(_ value: OperationalState) {
        if operational.exchange(value.rawValue, ordering: .relaxed) != value.rawValue {
            lastChange.store(WallClock.seconds(), ordering: .relaxed)
        }
    }

    func setWeight(_ value: Int) { currentWeight.store(value, ordering: .relaxed) }
    func setMaxconn(_ value: Int) { currentMaxconn.store(value, ordering: .relaxed) }

    func setAddress(_ value: ServerAddress) {
        let resolved = Self.resolve(value)
        address.withLockedValue { $0 = (value, resolved) }
        hasAddress.store(resolved != nil, ordering: .relaxed)
    }
}
