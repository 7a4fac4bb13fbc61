import Shared

/// Applies `tcp-request` actions to a stream's context; what they decide about the connection
/// (accept, reject, wait for a PROXY header) is left to the caller.
enum TCPRuleRunner {
    enum Verdict {
        /// Go on with the next rule.
        case next
        /// `accept`: stop evaluating this rule set.
        case accept
        case reject
        /// `expect-proxy layer4`.
        case expectProxy
    }

    static func apply(_ rule: TCPRule, _ c: StreamContext) -> Verdict {
        switch rule.action {
        case .accept, .switchToHTTP: return .accept
        case .reject: return .reject
        case .expectProxy: return .expectProxy
        case .setVar(let name, let e):
            if let v = e.evaluate(c) { c.setVariable(name, v) }
        case .setVarFormat(let name, let f):
            c.setVariable(name, .string(f.evaluate(c)))
        case .unsetVar(let name):
            c.setVariable(name, nil)
        case .capture(let e, let length):
            c.capture(e.evaluate(c)?.asString.map { String($0.utf8.prefix(length)) ?? $0 }, slot: nil, response: false)
        case .setSource(let e):
            if let v = e.evaluate(c) { c.overrideAddress(v, source: true) }
        case .setDestination(let e):
            if let v = e.evaluate(c) { c.overrideAddress(v, source: false) }
        case .setLogLevel(let level):
            c.logLevel = level
        case .track(let track):
            // Connection and session rules track for the whole connection; content rules,
            // for the current stream.
            c.track(track, level: rule.phase == .content ? .stream : .session, countsRequest: false)
        case .stickCounter(let action):
            c.stickCounters?.apply(action, context: c)
        case .ignored:
            break
        }
        return .next
    }
}
