/// `if|unless <terms>`: ORs (`||`, `or`) of ANDs of ACLs, each possibly negated with `!`.
/// Evaluation is lazy: an AND stops at its first false term, the OR at its first true AND.
public final class RuleCondition: Sendable, CustomStringConvertible {
    public enum Term: Sendable {
        case named(NamedACL)
        case anonymous(ACLTest)

        func matches(_ context: SampleContext) -> Bool {
            switch self {
            case .named(let acl): return acl.matches(context)
            case .anonymous(let test): return test.matches(context)
            }
        }

        var tests: [ACLTest] {
            switch self {
            case .named(let acl): return acl.tests
            case .anonymous(let test): return [test]
            }
        }
    }

    /// One term of the flattened condition: the ANDed terms of an alternative follow each
    /// other, the last one of each alternative `endsGroup` (one flat list: walking nested
    /// arrays costs a retain per level and per element on every request). A step holds no
    /// counted reference (`terms` keeps the objects alive), so reading one out of the list
    /// costs no retain and release on every request.
    struct Step: @unchecked Sendable {
        let negated: Bool
        let endsGroup: Bool
        let acl: Unmanaged<NamedACL>?
        let test: Unmanaged<ACLTest>?

        init(negated: Bool, endsGroup: Bool, term: Term) {
            self.negated = negated
            self.endsGroup = endsGroup
            switch term {
            case .named(let acl): (self.acl, test) = (.passUnretained(acl), nil)
            case .anonymous(let test): (acl, self.test) = (nil, .passUnretained(test))
            }
        }

        @inline(__always)
        func matches(_ context: SampleContext) -> Bool {
            if let acl { return acl._withUnsafeGuaranteedRef { $0.matches(context) } }
            return test?._withUnsafeGuaranteedRef { $0.matches(context) } ?? false
        }
    }

    public let unless: Bool
    public let source: String
    /// The terms in step order: they keep the ACL objects the steps point to alive.
    private let terms: [Term]
    private let steps: ContiguousArray<Step>

    init(unless: Bool, alternatives: [[(negated: Bool, term: Term)]], source: String) {
        self.unless = unless
        self.source = source
        var steps = ContiguousArray<Step>()
        var terms: [Term] = []
        for group in alternatives {
            for (index, (negated, term)) in group.enumerated() {
                steps.append(Step(negated: negated, endsGroup: index == group.count - 1, term: term))
                terms.append(term)
            }
        }
        self.steps = steps
        self.terms = terms
    }

    public var description: String { source }

    public func matches(_ context: SampleContext) -> Bool {
        steps.withUnsafeBufferPointer { steps in
            var groupHolds = true
            for index in 0..<steps.count {
                if groupHolds, steps[index].matches(context) == steps[index].negated { groupHolds = false }
                if steps[index].endsGroup {
                    if groupHolds { return !unless }
                    groupHolds = true
                }
            }
            return unless
        }
    }

    /// Whether a test reads the request contents (`req.len`, `req.ssl_sni`...): its answer may
    /// change as more bytes arrive.
    public var readsRequestContent: Bool {
        allTests.contains { $0.test.expression.fetch.uses.contains(.requestContent) }
    }

    /// Each term's ACL (its name, nil for an anonymous one) and tests, in the order they are
    /// evaluated: the stage check reports the first that cannot work where the rule runs.
    var termTests: [(name: String?, tests: [ACLTest])] {
        terms.map { term in
            switch term {
            case .named(let acl): return (acl.name, acl.tests)
            case .anonymous(let test): return (nil, [test])
            }
        }
    }

    /// Every ACL test used, with the name of its ACL.
    var allTests: [(name: String?, test: ACLTest)] {
        termTests.flatMap { term in term.tests.map { (term.name, $0) } }
    }
}

/// Parses conditions against the ACLs a proxy declared so far.
public enum ConditionParser {
    public struct Failure: Error, Sendable {
        public var message: String
    }

    /// `words` starts with `if` or `unless`.
    public static func parse(_ words: ArraySlice<String>, acls: [String: NamedACL], context: RuleCompilationContext,
                             warn: (String) -> Void) throws(Failure) -> RuleCondition {
        guard let keyword = words.first, keyword == "if" || keyword == "unless" else {
            throw Failure(message: "expects 'if' or 'unless'")
        }
        var alternatives: [[(negated: Bool, term: RuleCondition.Term)]] = [[]]
        var i = words.startIndex + 1
        while i < words.endIndex {
            var word = words[i]
            if word == "||" || word == "or" {
                guard !alternatives[alternatives.count - 1].isEmpty else {
                    throw Failure(message: "missing ACL before '\(word)'")
                }
                alternatives.append([])
                i += 1
                continue
            }
            var negated = false
            while word.hasPrefix("!") {
                negated.toggle()
                word.removeFirst()
            }
            if word.isEmpty {
                i += 1
                if i >= words.endIndex { break }
                word = words[i]
                if word.hasPrefix("!") { continue }
            }
            if word == "{" {
                var j = i + 1
                var inner: [String] = []
                while j < words.endIndex, words[j] != "}" {
                    inner.append(words[j])
                    j += 1
                }
                guard j < words.endIndex else { throw Failure(message: "missing closing '}' in condition.") }
                guard !inner.isEmpty else { throw Failure(message: "no ACL keyword in anonymous ACL") }
                do {
                    let test = try ACLCompiler.compile(inner, context: context, warn: warn)
                    alternatives[alternatives.count - 1].append((negated, .anonymous(test)))
                } catch {
                    throw Failure(message: error.message)
                }
                i = j + 1
                continue
            }
            if let acl = acls[word] {
                alternatives[alternatives.count - 1].append((negated, .named(acl)))
            } else if let words = ACLKeywords.predefined[word] {
                do {
                    let test = try ACLCompiler.compile(words, context: context, warn: warn)
                    alternatives[alternatives.count - 1].append((negated, .anonymous(test)))
                } catch {
                    throw Failure(message: error.message)
                }
            } else {
                throw Failure(message: "no such ACL : '\(word)'")
            }
            i += 1
        }
        alternatives.removeAll { $0.isEmpty }
        return RuleCondition(unless: keyword == "unless", alternatives: alternatives, source: words.joined(separator: " "))
    }
}
