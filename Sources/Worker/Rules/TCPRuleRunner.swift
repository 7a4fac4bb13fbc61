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

    static func apply(_ action: TCPAction, _ c: StreamContext) -> Verdict {
        switch action {
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
        case .ignored:
            break
        }
        return .next
    }
}
