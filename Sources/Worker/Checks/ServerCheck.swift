import NIOConcurrencyHelpers
import Shared

/// One check of a server (its health check or its agent), as the stats and the CLI see it. The
/// checker writes it from its event loop; readers take the same short lock.
public final class ServerCheck: Sendable {
    public enum Kind: Sendable { case health, agent }

    public struct State: Sendable {
        public var health: CheckHealth
        /// `enable|disable health|agent`: a disabled check does not run and does not count.
        public var enabled: Bool
        /// Paused while the server is in maintenance.
        public var paused = false
        public var last = CheckReport(status: .initializing)
        /// Wall-clock second of the last completed run (`last_chk`), 0 before the first.
        public var lastRun = 0
        /// Failed checks (`chkfail`).
        public var failures = 0
        /// Times this check took the server down (`chkdown`).
        public var downs = 0
        /// Bumped to ask the checker to run at once (leaving maintenance, enabling).
        public var wakeups = 0
    }

    public let kind: Kind
    private let state: NIOLockedValueBox<State>

    init(kind: Kind, rise: Int, fall: Int, enabled: Bool) {
        self.kind = kind
        state = NIOLockedValueBox(State(health: CheckHealth(rise: rise, fall: fall), enabled: enabled))
    }

    public var snapshot: State { state.withLockedValue { $0 } }

    @discardableResult
    func update<T>(_ body: (inout State) -> T) -> T { state.withLockedValue { body(&$0) } }

    /// Running and counting: enabled and not paused.
    var isActive: Bool { state.withLockedValue { $0.enabled && !$0.paused } }
    /// Configured and switched on (paused or not): its verdict gates the server.
    var isEnabled: Bool { state.withLockedValue { $0.enabled } }
    var isUp: Bool { state.withLockedValue { $0.health.isUp } }
}
