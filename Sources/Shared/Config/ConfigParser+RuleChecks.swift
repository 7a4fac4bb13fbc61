/// Conditions and the checks HAProxy makes of where rules run: which fetches an ACL can use at
/// a rule's stage, and in which order rules of each kind run whatever order they are declared in.
extension ConfigParser {
    /// How a condition's ACLs are checked against where the rule runs.
    enum StageCheck {
        /// HAProxy's warning, naming the place the rule's stage and section give.
        case warn
        /// The same, naming `place` (stick rules have places of their own).
        case warnNaming(place: String)
        /// A TCP rule: the warning names the rule (`tcp-request content`) too.
        case warnTCPRule(String)
        /// No check (`monitor fail`, as in HAProxy).
        case none
    }

    /// Compiles a condition, reporting errors as `while parsing <what> condition`; checks the
    /// fetches it uses against the stage (a warning, as HAProxy does).
    mutating func compileCondition(_ words: ArraySlice<String>?, _ p: ProxySettings, stage: RuleStage, what: String,
                                   check: StageCheck = .warn) -> RuleCondition?? {
        guard let words else { return .some(nil) }
        var warnings: [String] = []
        do {
            let condition = try ConditionParser.parse(words, acls: p.rules.acls, context: ruleContext) { warnings.append($0) }
            for text in warnings { warn(text) }
            let place: String, tcpRule: String?
            switch check {
            case .none: return .some(condition)
            case .warn: (place, tcpRule) = (Self.checkPlace(stage, p.kind), nil)
            case .warnNaming(let named): (place, tcpRule) = (named, nil)
            case .warnTCPRule(let rule): (place, tcpRule) = (Self.checkPlace(stage, p.kind), rule)
            }
            if let warning = Self.incompatibility(of: condition, at: stage, place: place, tcpRule: tcpRule, inBackend: currentProxyIsBackend) {
                parsingWarning(warning)
            }
            return .some(condition)
        } catch {
            parsingAlert("error detected while parsing \(what) : \(error.message)\(error.message.hasSuffix(".") ? "" : ".")")
            return nil
        }
    }

    /// HAProxy's name of where a condition runs, in its "incompatible with" warnings. In a
    /// `listen` section it is the frontend's place for request rules and the backend's for
    /// response rules (HAProxy names the first of the places the rule covers).
    static func checkPlace(_ stage: RuleStage, _ kind: ProxyKind) -> String {
        let requestSide = kind == .backend ? "backend" : "frontend"
        let responseSide = kind == .frontend ? "frontend" : "backend"
        switch stage {
        case .tcpConnection: return "frontend tcp-request connection rule"
        case .tcpSession: return "frontend tcp-request session rule"
        case .tcpRequestContent: return "\(requestSide) tcp-request content rule"
        case .tcpResponseContent: return "\(responseSide) tcp-response content rule"
        case .httpResponse, .httpAfterResponse: return "\(responseSide) http-response header rule"
        case .backendSwitching: return "frontend use-backend rule"
        case .serverSwitching: return "backend use-server, balance or stick-match rule"
        default: return "\(requestSide) http-request header rule"
        }
    }

    /// HAProxy's warning for a condition with ACLs that cannot work at `stage`: the first term
    /// none of whose tests can ("will never match"), else the first test that cannot
    /// ("involves"). TCP rules name themselves (`tcpRule`) in the first form.
    static func incompatibility(of condition: RuleCondition, at stage: RuleStage, place: String, tcpRule: String?,
                                inBackend: Bool = false) -> String? {
        let available = SampleUse.available(at: stage, inBackend: inBackend)
        let terms = condition.termTests
        let usable = { (test: ACLTest) in test.expression.fetch.uses.isAvailable(in: available) }
        let within = tcpRule.map { " in '\($0)'" } ?? ""
        if let (name, tests) = terms.first(where: { !$0.tests.contains(where: usable) }), let first = tests.first {
            if let name { return "acl '\(name)' will never match\(within) because it only involves keywords that are incompatible with '\(place)'" }
            return "anonymous acl will never match\(within) because it uses keyword '\(first.keyword)' which is incompatible with '\(place)'"
        }
        for (name, tests) in terms {
            guard let test = tests.first(where: { !usable($0) }) else { continue }
            if let name { return "acl '\(name)' involves keyword\(tcpRule == nil ? "s" : "") '\(test.keyword)' which is incompatible with '\(place)'" }
            return "anonymous acl involves keyword '\(test.keyword)' which is incompatible with '\(place)'"
        }
        return nil
    }

    /// A request rule of `kind` was declared: HAProxy's warning when rules of a kind it runs
    /// before were declared first (the first such kind in running order).
    mutating func noteRuleKind(_ kind: RuleKindOrder, keyword: String, _ p: inout ProxySettings) {
        if kind < .useBackend, let later = RuleKindOrder.allCases.first(where: { $0 > kind && p.declaredRuleKinds.contains($0) }) {
            parsingWarning("a '\(keyword)' rule placed after \(later.described) rule will still be processed before.")
        }
        p.declaredRuleKinds.insert(kind)
    }
}
