#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Synchronization

/// The environment as one parse sees it: the process's variables under the changes the
/// configuration made so far (`setenv`, `presetenv`, `unsetenv`, `resetenv`, `localpeer`).
///
/// A parse never writes the process environment itself: the binary applies the changes once it
/// keeps the result (`applyToProcess()`). Parsing is also done inside running processes (the
/// test suite, `add server` on the runtime API), and `setenv(3)` may reallocate `environ`
/// while another thread copies it, for instance to spawn a process.
public final class ConfigEnvironment: Sendable {
    /// One change, in the order the configuration made it.
    public enum Change: Sendable, Equatable {
        case set(String, String)
        case unset(String)
        /// `resetenv`: every variable but these is removed.
        case keepOnly(Set<String>)
    }

    private struct State {
        /// Variables set or removed (nil) since the last reset.
        var overlay: [String: String?] = [:]
        /// After a `resetenv`: the only base variables still visible.
        var kept: Set<String>?
        var changes: [Change] = []
    }

    private let state = Mutex(State())
    /// The environment under the changes (the process's, or a test's).
    private let base: @Sendable (String) -> String?

    public init(base: @escaping @Sendable (String) -> String? = { ProcessEnvironment.get($0) }) {
        self.base = base
    }

    /// The variable's value in this parse.
    public func get(_ name: String) -> String? {
        switch change(for: name) {
        case .some(let value): return value
        case .none: return base(name)
        }
    }

    /// What the configuration did to the variable: nil if nothing, `.some(nil)` if it removed it.
    public func change(for name: String) -> String?? {
        state.withLock { state in
            if let value = state.overlay[name] { return value }
            if let kept = state.kept, !kept.contains(name) { return .some(nil) }
            return nil
        }
    }

    public func set(_ name: String, _ value: String) {
        state.withLock {
            $0.overlay[name] = .some(value)
            $0.changes.append(.set(name, value))
        }
    }

    public func unset(_ name: String) {
        state.withLock {
            $0.overlay[name] = .some(nil)
            $0.changes.append(.unset(name))
        }
    }

    public func keepOnly(_ names: Set<String>) {
        state.withLock {
            // A base variable stays visible only if no earlier reset hid it.
            $0.kept = $0.kept.map { $0.intersection(names) } ?? names
            $0.overlay = $0.overlay.filter { names.contains($0.key) }
            $0.changes.append(.keepOnly(names))
        }
    }

    public var changes: [Change] { state.withLock { $0.changes } }

    /// Makes the changes in the process environment, in order.
    public func applyToProcess() {
        for change in changes {
            switch change {
            case .set(let name, let value): setenv(name, value, 1)
            case .unset(let name): unsetenv(name)
            case .keepOnly(let names):
                for name in ProcessEnvironment.names() where !names.contains(name) { unsetenv(name) }
            }
        }
    }
}
