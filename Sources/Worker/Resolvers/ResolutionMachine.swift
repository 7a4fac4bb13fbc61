/// What a name server's response to one question came to, before the resolution weighs it.
enum NameserverResponse: Equatable, Sendable {
    case reply(DNSReply)
    case nx
    case refused
    /// No record of that type (NOERROR, no answer).
    case empty
    case timeout
    /// The question could not be sent, or the server refused the connection.
    case sendError
    case other

    /// The `show resolvers` counter this response adds to (a valid reply counts as `valid`
    /// only if it wins, which the caller knows).
    var counter: NameserverCounters.Counter? {
        switch self {
        case .reply(.addresses), .reply(.services): nil
        case .reply(.invalid): .invalid
        case .reply(.cnameError): .cnameError
        case .reply(.noRecord): .other
        case .nx: .nx
        case .refused: .refused
        case .empty: .anyErr
        case .timeout: .timeout
        case .sendError: .sndError
        case .other: .other
        }
    }

    var isValid: Bool {
        switch self {
        case .reply(.addresses), .reply(.services): true
        default: false
        }
    }
}

/// Why a resolution failed: which `hold` period keeps the last answer.
enum ResolutionFailure: String, Sendable {
    case nx, refused, timeout, other

    /// HAProxy's reason when the hold period is over and the server enters maintenance.
    var maintenanceCause: String {
        switch self {
        case .nx: "DNS NX status"
        case .refused: "DNS refused status"
        case .timeout: "DNS timeout status"
        case .other: "unspecified DNS error"
        }
    }
}

/// One name of one section, resolved over and over, as HAProxy resolves it: the question goes
/// to every name server at once and the first valid reply wins (later ones are outdated);
/// when every server failed, an address resolution asks again for the other family (AAAA
/// after A, or A after AAAA), and only then fails. Pure state: the caller sends the questions
/// and keeps the time.
struct ResolutionMachine: Sendable {
    enum Kind: Hashable, Sendable {
        case address(preferIPv4: Bool)
        case service
    }

    enum Action: Equatable, Sendable {
        /// Ask every name server this question; responses carry the generation.
        case ask(DNSQueryType, generation: Int)
        case succeeded(DNSReply)
        case failed(ResolutionFailure)
        /// Nothing to do (more responses are awaited).
        case wait
        /// The response came after the question was settled: HAProxy's `outdated`.
        case outdated
    }

    private enum State: Equatable {
        case idle(dueMs: Int)
        case asking(DNSQueryType, pending: Int, fellBack: Bool, failure: ResolutionFailure)
    }

    let kind: Kind
    private(set) var generation = 0
    private var state: State = .idle(dueMs: 0)
    /// When a reply was last valid (the `hold` periods count from there).
    private(set) var lastValidMs: Int

    init(kind: Kind, nowMs: Int) {
        self.kind = kind
        lastValidMs = nowMs
    }

    private var preferred: DNSQueryType {
        switch kind {
        case .service: .srv
        case .address(let preferIPv4): preferIPv4 ? .a : .aaaa
        }
    }

    func isDue(nowMs: Int) -> Bool {
        if case .idle(let due) = state { return due <= nowMs }
        return false
    }

    /// Starts a resolution over `nameservers` servers.
    mutating func start(nameservers: Int) -> Action {
        generation += 1
        state = .asking(preferred, pending: nameservers, fellBack: false, failure: .timeout)
        return .ask(preferred, generation: generation)
    }

    /// A name server's response to the question of `generation`. `retryMs` is when to try
    /// again after a failure, `validMs` after a success (`timeout resolve`, `hold valid`).
    mutating func receive(_ response: NameserverResponse, generation: Int, nameservers: Int, nowMs: Int, retryMs: Int, validMs: Int) -> Action {
        guard generation == self.generation, case .asking(let type, let pending, let fellBack, var failure) = state else {
            return response.isValid ? .outdated : .wait
        }
        if case .reply(let reply) = response, response.isValid {
            state = .idle(dueMs: nowMs + validMs)
            lastValidMs = nowMs
            self.generation += 1
            return .succeeded(reply)
        }
        switch response {
        case .nx: failure = .nx
        case .refused: failure = .refused
        // Silence keeps whatever a server said before it.
        case .timeout, .sendError: break
        default: failure = .other
        }
        guard pending <= 1 else {
            state = .asking(type, pending: pending - 1, fellBack: fellBack, failure: failure)
            return .wait
        }
        if !fellBack, type != .srv {
            let other: DNSQueryType = type == .a ? .aaaa : .a
            self.generation += 1
            state = .asking(other, pending: nameservers, fellBack: true, failure: failure)
            return .ask(other, generation: self.generation)
        }
        state = .idle(dueMs: nowMs + retryMs)
        self.generation += 1
        return .failed(failure)
    }

    /// Asks again at the next turn (`set server fqdn`, a name just needed).
    mutating func expedite() {
        if case .idle = state { state = .idle(dueMs: 0) }
    }
}
