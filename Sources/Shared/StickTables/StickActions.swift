/// `track-scN <key> [table <t>]` in `tcp-request` and `http-request`/`http-response` rules.
public struct StickTrackAction: Sendable {
    public var counter: Int
    public var key: SampleExpression
    public var table: String
}

/// `sc-inc-gpc0(N)`, `sc-inc-gpc1(N)`, `sc-inc-gpc(idx,N)`, `sc-add-gpc(idx,N) <expr>`,
/// `sc-set-gpt0(N) <expr>`, `sc-set-gpt(idx,N) <expr>`: updates of a tracked entry.
public struct StickCounterAction: Sendable {
    public enum Operation: Sendable {
        /// A general purpose counter (`gpc0`, `gpc1` or element `index` of `gpc`) and its
        /// rate count events.
        case increment
        case add(SampleExpression)
        /// A general purpose tag (`gpt0` or element `index` of `gpt`) is set.
        case set(SampleExpression)
    }
    public var counter: Int
    /// `gpc0`, `gpc1`, `gpc`, `gpt0` or `gpt`.
    public var kind: StickDataKind
    public var index: Int
    public var operation: Operation

    public init(counter: Int, kind: StickDataKind, index: Int, operation: Operation) {
        self.counter = counter
        self.kind = kind
        self.index = index
        self.operation = operation
    }
}

extension StickCounters {
    /// Applies a counter action to the entry tracked by its counter (nothing when none is).
    public func apply(_ action: StickCounterAction, context: SampleContext) {
        guard let tracker = tracker(action.counter) else { return }
        var amount: Int64 = 1
        switch action.operation {
        case .increment: break
        case .add(let e), .set(let e):
            guard let value = e.evaluate(context)?.asInt else { return }
            amount = value
        }
        let now = tracker.table.now
        tracker.table.withStorage { s in
            let slot = tracker.slot
            switch (action.operation, action.kind) {
            case (.set, .gpt0):
                // `gpt0`, else the first element of `gpt`.
                if !s.set(slot, .gpt0, amount, at: 0, now: now) { s.set(slot, .gpt, amount, at: 0, now: now) }
            case (.set, _):
                s.set(slot, .gpt, amount, at: action.index, now: now)
            case (_, .gpc0), (_, .gpc1):
                let rate: StickDataKind = action.kind == .gpc0 ? .gpc0Rate : .gpc1Rate
                let element = action.kind == .gpc0 ? 0 : 1
                if !s.add(slot, rate, amount, at: 0, now: now) { s.add(slot, .gpcRate, amount, at: element, now: now) }
                if !s.add(slot, action.kind, amount, at: 0, now: now) { s.add(slot, .gpc, amount, at: element, now: now) }
            default:
                s.add(slot, .gpcRate, amount, at: action.index, now: now)
                s.add(slot, .gpc, amount, at: action.index, now: now)
            }
            s.touch(slot, now: now)
        }
    }
}

/// `stick match|on|store-request|store-response <pattern> [table <t>] [if|unless <cond>]`:
/// persistence by a key the table maps to a server.
public final class StickRule: Sendable {
    public enum Kind: String, Sendable {
        case match, on, storeRequest = "store-request", storeResponse = "store-response"
        /// Looks the key up to pick the server.
        public var matches: Bool { self == .match || self == .on }
        /// Stores the request's key with the server that served it.
        public var storesRequest: Bool { self == .on || self == .storeRequest }
    }
    public let kind: Kind
    public let pattern: SampleExpression
    public let table: String
    public let condition: RuleCondition?
    public let location: SourceLocation

    public init(kind: Kind, pattern: SampleExpression, table: String, condition: RuleCondition?, location: SourceLocation) {
        self.kind = kind
        self.pattern = pattern
        self.table = table
        self.condition = condition
        self.location = location
    }
}
