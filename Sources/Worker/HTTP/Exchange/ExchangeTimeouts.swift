import Shared

/// Milliseconds on a monotonic clock. The exchange never reads a clock: every event that
/// depends on time carries `now`, so timeouts are decided the same way under a test clock.
typealias ExchangeTime = Int64

/// Where the connection handler reads the time. Production uses the process's monotonic clock;
/// tests use a clock they advance together with an `EmbeddedEventLoop`.
protocol ExchangeClock: Sendable {
    func now() -> ExchangeTime
}

struct MonotonicExchangeClock: ExchangeClock {
    func now() -> ExchangeTime { ExchangeTime(MonotonicClock.milliseconds()) }
}

/// The timeouts one client connection obeys, in milliseconds (0: none), resolved from the
/// frontend and, once a request has one, its backend, with HAProxy's fallbacks.
struct ExchangeTimeouts: Equatable, Sendable {
    /// The first request's head: `timeout http-request`, else `timeout client`.
    var firstRequest: Int64 = 0
    /// Waiting for a later request: `timeout http-keep-alive`, else `http-request`, else `client`.
    var keepAlive: Int64 = 0
    /// `timeout client`, which also bounds a lingering close (5 s when unset).
    var client: Int64 = 0
    /// Server inactivity once the request went out: the backend's `timeout server`.
    var server: Int64 = 0
    /// Waiting in the backend's queue: `timeout queue`, else `timeout connect`.
    var queue: Int64 = 0
    /// Inactivity of an upgraded connection: `timeout tunnel`, else the larger of client and server.
    var tunnel: Int64 = 0

    init() {}

    init(frontend: Timeouts, backend: Timeouts?) {
        firstRequest = frontend.httpRequest ?? frontend.client ?? 0
        keepAlive = frontend.httpKeepAlive ?? frontend.httpRequest ?? frontend.client ?? 0
        client = frontend.client ?? 0
        useBackend(backend ?? frontend, frontend: frontend)
    }

    /// The parts that come from the backend serving the current request.
    mutating func useBackend(_ backend: Timeouts, frontend: Timeouts) {
        server = backend.server ?? 0
        queue = backend.queue ?? backend.connect ?? 0
        tunnel = backend.tunnel ?? max(frontend.client ?? 0, backend.server ?? 0)
    }

    /// How long a lingering close may wait for the client to stop sending.
    var lingering: Int64 { client > 0 ? client : 5_000 }
}

/// What the single deadline of a connection is waiting for.
enum ExchangeTimer: Equatable, Sendable {
    case request
    case keepAlive
    case queue
    /// Server inactivity: the deadline moves with each sign of life from the server.
    case server
    /// Tunnel inactivity, both directions.
    case tunnel
}
