/// One compiled argument of a fetch or converter.
public enum SampleArgument: Sendable {
    case string(String)
    case int(Int64)
    case variable(VariableName)
    case regex(Regex)
    case map(PatternSet)
    /// An IPv6 mask (`ipmask`'s second argument).
    case ipv6(IPv6Address)
    case none

    public var string: String? { if case .string(let s) = self { return s } else { return nil } }
    public var int: Int64? { if case .int(let i) = self { return i } else { return nil } }
}

/// What kind of argument a fetch or converter takes, checked and converted at load.
public enum ArgumentKind: Sendable {
    case string, int, variable, regex, backend, userlist
    /// An integer or a variable name (`add(txn.x)`, `add(3)`).
    case intOrVariable
    /// A variable name when the text is one (`txn.key`), else a constant string.
    case stringOrVariable
    /// A header name: compared without regard to case, so stored lowercase.
    case headerName
    /// A map file, compiled for a match method (`map_beg(file)`), and the output type's name.
    case map(MatchMethod, output: String)
    /// A netmask: a prefix length or a dotted IPv4 mask (stored as `.int` of the 32-bit mask),
    /// or a prefix length or an IPv6 mask (stored as `.ipv6`).
    case ipv4Mask, ipv6Mask
    /// A word from a fixed list (`url_enc(query)`), with HAProxy's message for another.
    case choice([String], message: String)
    /// A stick table's name, checked once the whole configuration is read. Left out, it names
    /// the rule's own proxy when `defaultsToProxy` (`src_conn_cur`), else nothing
    /// (`sc0_conn_cur`: the tracked entry's table).
    case table(defaultsToProxy: Bool)
}

extension ArgumentKind {
    /// Text taken as it is written (an empty one included).
    var isPlainText: Bool {
        switch self {
        case .string, .stringOrVariable: return true
        default: return false
        }
    }

    /// HAProxy's name for the type, in "missing arguments" messages.
    var typeName: String {
        switch self {
        case .int, .intOrVariable: return "integer"
        case .backend: return "backend"
        case .userlist: return "user list"
        case .regex: return "regex"
        case .ipv4Mask: return "IPv4 mask"
        case .ipv6Mask: return "IPv6 mask"
        case .table: return "table"
        case .string, .variable, .stringOrVariable, .headerName, .map, .choice: return "string"
        }
    }
}

/// What a fetch produced: nothing, one sample, or every occurrence (headers, cookies) when
/// an ACL iterates over them.
public enum FetchResult {
    case none
    case one(SampleValue)
    case many([SampleValue])

    var last: SampleValue? {
        switch self {
        case .none: return nil
        case .one(let v): return v
        case .many(let all): return all.last
        }
    }
}

/// `fetch(args),converter(args),...` parsed once at load.
public final class SampleExpression: Sendable, CustomStringConvertible {
    public let fetch: FetchDefinition
    public let arguments: [SampleArgument]
    public let converters: [ConverterCall]
    /// The text it was compiled from (messages, equality).
    public let source: String

    init(fetch: FetchDefinition, arguments: [SampleArgument], converters: [ConverterCall], source: String) {
        self.fetch = fetch
        self.arguments = arguments
        self.converters = converters
        self.source = source
        uncountedConverters = ContiguousArray(converters.map { .passUnretained($0) })
        uncountedFetch = .passUnretained(fetch)
    }

    /// `fetch` referenced without counting (`fetch` keeps it alive).
    private let uncountedFetch: Unmanaged<FetchDefinition>

    /// `converters` referenced without counting (`converters` keeps them alive): a loop over
    /// the array copies each call out, a retain and a release per converter and request.
    private let uncountedConverters: ContiguousArray<Unmanaged<ConverterCall>>

    public var description: String { source }

    /// The type of the result, after the converters.
    public var outputType: SampleType { converters.last?.definition.output ?? fetch.output }

    /// The single value of the expression (the last occurrence of a multi-valued fetch).
    public func evaluate(_ context: SampleContext) -> SampleValue? {
        guard let value = uncountedFetch._withUnsafeGuaranteedRef({ $0.evaluate(context, arguments, false) }).last else { return nil }
        if uncountedConverters.isEmpty { return value }
        return convert(value, context)
    }

    /// The value through every converter (nil when one has no answer).
    private func convert(_ first: SampleValue, _ context: SampleContext) -> SampleValue? {
        var value = first
        return uncountedConverters.withUnsafeBufferPointer { calls -> SampleValue? in
            for call in calls {
                guard let output = call._withUnsafeGuaranteedRef({ call -> SampleValue? in
                    call.uncountedDefinition._withUnsafeGuaranteedRef { definition -> SampleValue? in
                        guard let input = value.cast(to: definition.input) else { return nil }
                        return definition.apply(input, call.arguments, context)
                    }
                }) else { return nil }
                value = output
            }
            return value
        }
    }

    /// Every value, for an ACL: each occurrence goes through the converters.
    public func evaluateAll(_ context: SampleContext, _ body: (SampleValue) -> Bool) {
        let result = fetch.evaluate(context, arguments, true)
        if converters.isEmpty {
            switch result {
            case .none: return
            case .one(let v): _ = body(v)
            case .many(let all): for v in all where body(v) { return }
            }
            return
        }
        switch result {
        case .none: return
        case .one(let v): if let c = convert(v, context) { _ = body(c) }
        case .many(let all):
            for v in all { if let c = convert(v, context), body(c) { return } }
        }
    }
}

/// One converter of an expression with its arguments (a class: expressions walk their calls
/// without counting references).
public final class ConverterCall: Sendable {
    public let definition: ConverterDefinition
    public let arguments: [SampleArgument]

    init(definition: ConverterDefinition, arguments: [SampleArgument]) {
        self.definition = definition
        self.arguments = arguments
        uncountedDefinition = .passUnretained(definition)
    }

    /// `definition` referenced without counting (`definition` keeps it alive).
    let uncountedDefinition: Unmanaged<ConverterDefinition>
}

/// A fetch: name, arguments, output type, what it reads, and what it does.
public final class FetchDefinition: Sendable {
    public let name: String
    public let arguments: [ArgumentKind]
    public let required: Int
    public let output: SampleType
    public let uses: SampleUse
    /// `all` is true when an ACL wants every occurrence.
    public let evaluate: @Sendable (SampleContext, [SampleArgument], Bool) -> FetchResult
    /// What is wrong with the compiled arguments beyond their kinds (HAProxy's message), if
    /// anything: checked once at load.
    public let check: (@Sendable ([SampleArgument]) -> String?)?

    public init(_ name: String, _ arguments: [ArgumentKind] = [], required: Int = 0, _ output: SampleType, _ uses: SampleUse,
                check: (@Sendable ([SampleArgument]) -> String?)? = nil,
                _ evaluate: @escaping @Sendable (SampleContext, [SampleArgument], Bool) -> FetchResult) {
        self.name = name
        self.arguments = arguments
        self.required = required
        self.output = output
        self.uses = uses
        self.check = check
        self.evaluate = evaluate
    }

    public convenience init(_ name: String, _ output: SampleType, _ uses: SampleUse,
                _ evaluate: @escaping @Sendable (SampleContext, [SampleArgument], Bool) -> FetchResult) {
        self.init(name, [], required: 0, output, uses, evaluate)
    }
}

/// A converter: input and output types, arguments, and the transformation.
public final class ConverterDefinition: Sendable {
    public let name: String
    public let arguments: [ArgumentKind]
    public let required: Int
    public let input: SampleType
    public let output: SampleType
    public let apply: @Sendable (SampleValue, [SampleArgument], SampleContext) -> SampleValue?
    /// What is wrong with the compiled arguments beyond their kinds (HAProxy's message), if
    /// anything: checked once at load.
    public let check: (@Sendable ([SampleArgument]) -> String?)?

    public init(_ name: String, _ arguments: [ArgumentKind] = [], required: Int = 0, _ input: SampleType, _ output: SampleType,
                check: (@Sendable ([SampleArgument]) -> String?)? = nil,
                _ apply: @escaping @Sendable (SampleValue, [SampleArgument], SampleContext) -> SampleValue?) {
        self.name = name
        self.arguments = arguments
        self.required = required
        self.input = input
        self.output = output
        self.check = check
        self.apply = apply
    }

    public convenience init(_ name: String, _ input: SampleType, _ output: SampleType,
                _ apply: @escaping @Sendable (SampleValue, [SampleArgument], SampleContext) -> SampleValue?) {
        self.init(name, [], required: 0, input, output, apply)
    }
}

/// What compiling needs from its surroundings: where pattern files are found, and the maps
/// already loaded (one `PatternSet` per file and match method, shared by every user).
public final class RuleCompilationContext {
    public var patternFiles: PatternFileStore
    /// Where the rule being compiled was declared (pattern references describe their users).
    public var location: SourceLocation?
    /// The proxy whose rule this is: the stick table a `src_*` fetch reads by default.
    public var proxyName: String?
    /// Where stick tables are named, to be checked when every table is known.
    public var tableReferences: StickTableReferences?
    /// Compiling an ACL (messages say "ACL keyword" rather than "sample fetch keyword").
    public var compilingACL = false

    public init(patternFiles: PatternFileStore = PatternFileStore(), location: SourceLocation? = nil,
                proxyName: String? = nil, tableReferences: StickTableReferences? = nil) {
        self.patternFiles = patternFiles
        self.location = location
        self.proxyName = proxyName
        self.tableReferences = tableReferences
    }
}

/// The stick tables rules name, each with what names it, for the checks made once every table
/// is declared.
public final class StickTableReferences {
    public struct Reference {
        public var table: String
        public var proxy: String
        public var location: SourceLocation?
        /// HAProxy's description of the user, e.g. "arg 1 of ACL keyword 'src_conn_cur'".
        public var user: String
        /// A `track-sc` action: "Proxy 'fe': unable to find table 'x' referenced by track-sc0."
        public var trackCounter: Int?
    }
    public private(set) var all: [Reference] = []
    public init() {}
    public func add(_ reference: Reference) { all.append(reference) }
}

/// Parses sample expressions: `name(arg,arg),conv(arg),conv`.
public enum SampleExpressionParser {
    public struct Failure: Error, Sendable {
        public var message: String
    }

    /// One `name(args)` element of the text, and where the next begins.
    struct Element {
        var name: String
        var arguments: [String]?
    }

    /// Splits `text` into elements. `end` is where parsing stopped (the first character not
    /// part of the expression, e.g. `]` in a log-format string).
    static func elements(_ text: Substring) throws(Failure) -> (elements: [Element], rest: Substring) {
        var elements: [Element] = []
        var i = text.startIndex
        while true {
            var name = ""
            while i < text.endIndex, text[i] != "(", text[i] != ",", text[i] != "]", text[i] != " " {
                name.append(text[i])
                i = text.index(after: i)
            }
            if name.isEmpty {
                throw Failure(message: elements.isEmpty ? "missing fetch method" : "missing converter name")
            }
            var args: [String]? = nil
            if i < text.endIndex, text[i] == "(" {
                i = text.index(after: i)
                var list: [String] = []
                var current = ""
                var quote: Character? = nil
                var closed = false
                while i < text.endIndex {
                    let c = text[i]
                    // A backslash outside single quotes escapes a backslash, a space or a quote,
                    // and makes \r, \n and \t; before anything else it stays (`\d` in a regex),
                    // as in HAProxy. Inside single quotes everything is verbatim.
                    if c == "\\", quote != "'", text.index(after: i) < text.endIndex {
                        let next = text[text.index(after: i)]
                        switch next {
                        case "\\", " ", "\"", "'": current.append(next); i = text.index(after: i)
                        case "r": current.append("\r"); i = text.index(after: i)
                        case "n": current.append("\n"); i = text.index(after: i)
                        case "t": current.append("\t"); i = text.index(after: i)
                        default: current.append(c)
                        }
                    } else if let q = quote {
                        if c == q { quote = nil } else { current.append(c) }
                    } else if c == "\"" || c == "'" {
                        quote = c
                    } else if c == "," {
                        list.append(current)
                        current = ""
                    } else if c == ")" {
                        list.append(current)
                        closed = true
                        i = text.index(after: i)
                        break
                    } else {
                        current.append(c)
                    }
                    i = text.index(after: i)
                }
                guard closed else {
                    throw Failure(message: "missing closing ')' after arguments to \(elements.isEmpty ? "fetch keyword" : "converter") '\(name)'")
                }
                if list == [""] { list = [] }
                args = list
            }
            elements.append(Element(name: name, arguments: args))
            if i < text.endIndex, text[i] == "," {
                i = text.index(after: i)
                continue
            }
            return (elements, text[i...])
        }
    }

    /// Compiles a whole expression.
    public static func parse(_ text: String, context: RuleCompilationContext) throws(Failure) -> SampleExpression {
        let (expression, rest) = try parsePrefix(Substring(text), context: context)
        if !rest.isEmpty {
            throw Failure(message: "unexpected character '\(rest.first!)' in sample expression '\(text)'")
        }
        return expression
    }

    /// Compiles the expression at the start of `text`; returns what follows it.
    public static func parsePrefix(_ text: Substring, context: RuleCompilationContext) throws(Failure)
        -> (SampleExpression, Substring)
    {
        let (elements, rest) = try elements(text)
        let first = elements[0]
        guard let fetch = FetchTable.byName[first.name] else {
            throw Failure(message: "unknown fetch method '\(first.name)'.")
        }
        let arguments = try compileArguments(first.arguments, kinds: fetch.arguments, required: fetch.required,
                                             what: "fetch method '\(fetch.name)'", context: context,
                                             user: (context.compilingACL ? "ACL keyword '" : "sample fetch keyword '") + fetch.name + "'")
        if let problem = fetch.check?(arguments) {
            throw Failure(message: "invalid args in fetch method '\(fetch.name)' : \(problem).")
        }
        var converters: [ConverterCall] = []
        var type = fetch.output
        for element in elements.dropFirst() {
            guard let converter = ConverterTable.byName[element.name] else {
                throw Failure(message: "unknown converter '\(element.name)'.")
            }
            guard SampleValue.canCast(type, to: converter.input) else {
                throw Failure(message: "converter '\(converter.name)' cannot be applied.")
            }
            let args = try compileArguments(element.arguments, kinds: converter.arguments, required: converter.required,
                                            what: "converter '\(converter.name)'", context: context,
                                            user: "converter '" + converter.name + "'")
            if let problem = converter.check?(args) {
                throw Failure(message: "invalid args in converter '\(converter.name)' : \(problem).")
            }
            converters.append(ConverterCall(definition: converter, arguments: args))
            type = converter.output
        }
        let consumed = text[text.startIndex..<rest.startIndex]
        return (SampleExpression(fetch: fetch, arguments: arguments, converters: converters, source: String(consumed)), rest)
    }

    /// `raw` is nil without parentheses.
    static func compileArguments(_ given: [String]?, kinds: [ArgumentKind], required: Int, what: String,
                                 context: RuleCompilationContext, user: String = "") throws(Failure) -> [SampleArgument] {
        var raw = given ?? []
        // Empty parentheses are one empty argument, as in HAProxy: `str()` is the empty string.
        if given?.isEmpty == true, required > 0, kinds[0].isPlainText { raw = [""] }
        if raw.count < required {
            let problem = "missing arguments (got \(raw.count)/\(required)), type '\(kinds[raw.count].typeName)' expected"
            throw Failure(message: what.hasPrefix("converter") ? "invalid arg \(raw.count + 1) in \(what) : \(problem)" : "\(what) : \(problem)")
        }
        if raw.count > kinds.count {
            throw Failure(message: "\(what) expects at most \(kinds.count) argument(s)")
        }
        var out: [SampleArgument] = []
        for (index, text) in raw.enumerated() {
            switch kinds[index] {
            case .string, .backend, .userlist:
                out.append(.string(text))
            case .table:
                out.append(.string(text))
                noteTable(text, argument: index + 1, user: user, context: context)
            case .headerName:
                out.append(.string(text.lowercased()))
            case .int:
                guard let n = Int64(text) else {
                    throw Failure(message: "failed to parse '\(text)' as type 'signed integer' at position \(index + 1) for \(what)")
                }
                out.append(.int(n))
            case .intOrVariable:
                if let n = Int64(text) {
                    out.append(.int(n))
                } else {
                    do { out.append(.variable(try VariableName.parse(text))) } catch { throw Failure(message: error.message) }
                }
            case .variable:
                do { out.append(.variable(try VariableName.parse(text))) } catch { throw Failure(message: error.message) }
            case .stringOrVariable:
                if let name = try? VariableName.parse(text) { out.append(.variable(name)) } else { out.append(.string(text)) }
            case .map(let method, let output):
                let user = "map at " + (context.location.map { "file '\($0.file)' line \($0.line)" } ?? "file '' line 0")
                do {
                    out.append(.map(try context.patternFiles.map(text, method: method, output: output, user: user)))
                } catch {
                    throw Failure(message: "invalid args in \(what) : \(error.message)")
                }
            case .ipv4Mask:
                guard let mask = Self.ipv4Mask(text) else {
                    throw Failure(message: "invalid arg \(index + 1) in \(what) : failed to parse '\(text)' as type 'IPv4 mask' at position \(index + 1).")
                }
                out.append(.int(Int64(mask)))
            case .ipv6Mask:
                guard let mask = Self.ipv6Mask(text) else {
                    throw Failure(message: "invalid arg \(index + 1) in \(what) : failed to parse '\(text)' as type 'IPv6 mask' at position \(index + 1).")
                }
                out.append(.ipv6(mask))
            case .choice(let words, let message):
                guard words.contains(text) else { throw Failure(message: "invalid args in \(what) : \(message)") }
                out.append(.string(text))
            case .regex:
                do {
                    out.append(.regex(try Regex(text)))
                } catch {
                    throw Failure(message: "invalid regex '\(text)' (error=\(error.message), erroffset=\(error.offset))")
                }
            }
        }
        // A table left out names the rule's own proxy where the fetch says so.
        if out.count < kinds.count, case .table(defaultsToProxy: true) = kinds[out.count], let proxy = context.proxyName {
            out.append(.string(proxy))
            noteTable(proxy, argument: out.count, user: user, context: context)
        }
        return out
    }

    /// A prefix length (0-32) or a dotted mask, as a 32-bit mask.
    static func ipv4Mask(_ text: String) -> UInt32? {
        if let bits = Int(text), (0...32).contains(bits) { return bits == 0 ? 0 : ~UInt32(0) << UInt32(32 - bits) }
        return IPAddressText.parseIPv4(Substring(text))
    }

    /// A prefix length (0-128) or an IPv6 mask.
    static func ipv6Mask(_ text: String) -> IPv6Address? {
        if let bits = Int(text) {
            guard (0...128).contains(bits) else { return nil }
            let high: UInt64 = bits >= 64 ? ~0 : (bits == 0 ? 0 : ~0 << UInt64(64 - bits))
            let low: UInt64 = bits <= 64 ? 0 : (bits >= 128 ? ~0 : ~0 << UInt64(128 - bits))
            return IPv6Address(high: high, low: low)
        }
        return IPAddressText.parseIPv6(Substring(text))
    }

    private static func noteTable(_ name: String, argument: Int, user: String, context: RuleCompilationContext) {
        context.tableReferences?.add(.init(table: name, proxy: context.proxyName ?? "", location: context.location,
                                           user: "arg \(argument) of \(user)"))
    }
}
