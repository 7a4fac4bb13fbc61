import Atomics
import NIOCore
import Shared

/// One `server` line at run time. Configuration is immutable; counters are atomics updated from
/// every event loop; idle connections live in one pool per event loop (`pools[loopIndex]`),
/// each touched only on its own loop.
public final class Server: Sendable {
    public let settings: ServerSettings
    public let backendName: String
    public let id: Int
    /// Index in the backend's server list.
    public let index: Int
    public let socketAddress: SocketAddress?

    /// Requests being served (or connections, in tcp mode); guarded by the backend's lock for
    /// slot accounting, mirrored here for lock-free reads.
    let served = ManagedAtomic<Int>(0)
    let maxServed = ManagedAtomic<Int>(0)
    let totalSessions = ManagedAtomic<Int>(0)
    let connectAttempts = ManagedAtomic<Int>(0)
    let reuses = ManagedAtomic<Int>(0)
    let connectionErrors = ManagedAtomic<Int>(0)
    let idleConnections = ManagedAtomic<Int>(0)
    let usedConnections = ManagedAtomic<Int>(0)
    let counters = ProxyCounters()

    let pools: [ServerConnectionPool]

    init(settings: ServerSettings, backendName: String, id: Int, index: Int, loopCount: Int) {
        self.settings = settings
        self.backendName = backendName
        self.id = id
        self.index = index
        switch settings.address {
        case .inet(let host, let port):
            // Names are resolved once at start-up, as HAProxy does without `resolvers`.
            socketAddress = (try? SocketAddress(ipAddress: host, port: port ?? 0))
                ?? (try? SocketAddress.makeAddressResolvingHost(host, port: port ?? 0))
        case .unix(let path):
            socketAddress = try? SocketAddress(unixDomainSocketPath: path)
        case .none:
            socketAddress = nil
        }
        var pools: [ServerConnectionPool] = []
        for loop in 0..<loopCount { pools.append(ServerConnectionPool(loopIndex: loop, settings: settings)) }
        self.pools = pools
    }

    public var name: String { settings.name }
    public var weight: Int { settings.weight }
    public var isBackup: Bool { settings.backup }
    /// Administrative state: `disabled` servers start in maintenance.
    public var isUsable: Bool { !settings.disabled && settings.weight > 0 && socketAddress != nil }
    public var currentServed: Int { served.load(ordering: .relaxed) }
    public var currentIdle: Int { idleConnections.load(ordering: .relaxed) }
}

