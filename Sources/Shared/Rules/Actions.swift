/// A response the proxy writes itself: `http-request deny|return|tarpit`, `http-response deny`.
public struct LocalReply: Sendable {
    public enum Body: Sendable {
        /// The proxy's error page for the status (an `errorfile` if one is set).
        case errorPage
        case none
        case bytes([UInt8])
        case format(LogFormatString)
    }

    public var status: Int
    public var contentType: String?
    public var body: Body
    public var headers: [(name: String, value: LogFormatString)]

    public init(status: Int, contentType: String? = nil, body: Body = .errorPage, headers: [(name: String, value: LogFormatString)] = []) {
        self.status = status
        self.contentType = contentType
        self.body = body
        self.headers = headers
    }
}

/// `redirect location|prefix|scheme <fmt> [code] [options]`.
public struct RedirectRule: Sendable {
    public enum Kind: String, Sendable { case location, prefix, scheme }
    public var kind: Kind
    public var target: LogFormatString
    public var code: Int
    public var dropQuery = false
    public var appendSlash = false
    public var setCookie: String?
    public var clearCookie: String?
    /// `ignore-empty`: when the target evaluates to nothing, the rule is skipped.
    public var ignoreEmpty = false
}

/// The parts of the request line a `set-*`/`replace-*` action rewrites.
public enum RequestLinePart: String, Sendable {
    case method, path, pathq, query, uri
}

/// How `del-header -m` compares names.
public enum HeaderNameMatch: Sendable {
    case exact, prefix, suffix, substring
    case regex(Regex)

    public var isExact: Bool { if case .exact = self { return true } else { return false } }
}

/// One action of an `http-request`, `http-response` or `http-after-response` rule.
public enum HTTPAction: Sendable {
    case allow
    case deny(LocalReply)
    case tarpit(LocalReply)
    /// Closes the connection without an answer.
    case reject
    case auth(realm: String?)
    case redirect(RedirectRule)
    case reply(LocalReply)
    case setHeader(String, LogFormatString)
    case addHeader(String, LogFormatString)
    case delHeader(String, HeaderNameMatch)
    /// `replace-header` (whole line value) and `replace-value` (each comma-separated value).
    case replaceHeader(String, Regex, LogFormatString, eachValue: Bool)
    case setRequestLine(RequestLinePart, LogFormatString)
    case replaceRequestLine(RequestLinePart, Regex, LogFormatString)
    case setVar(VariableName, SampleExpression)
    case setVarFormat(VariableName, LogFormatString)
    case unsetVar(VariableName)
    case setLogLevel(String)
    case capture(SampleExpression, length: Int, slot: Int?)
    case waitForBody(milliseconds: Int64, atLeast: Int?)
    case setTimeout(server: Bool, SampleExpression)
    case setSource(SampleExpression)
    case setDestination(SampleExpression)
    case setStatus(Int, reason: String?)
    case earlyHint(String, LogFormatString)
    /// The normalizer and its option (`full`, `strict`).
    case normalizeURI(String, option: String?)
    /// `use-service <name>`: an applet of the proxy answers the request.
    case useService(HTTPService)
    /// `track-scN`, `sc-inc-gpc*`, `sc-set-gpt*`, `sc-add-gpc`.
    case track(StickTrackAction)
    case stickCounter(StickCounterAction)
    /// Accepted and without effect here (`set-nice`, `set-mark`, `disable-l7-retry`...).
    case ignored(String)
}

extension HTTPAction {
    /// The action ends the rule list (HAProxy's final actions): an unconditional one makes the
    /// rules after it useless.
    public var isFinal: Bool {
        switch self {
        case .allow, .deny, .tarpit, .reject, .auth, .redirect, .reply, .useService: return true
        default: return false
        }
    }
}

/// The order HAProxy runs a proxy's request rules in, by kind, whatever order they are
/// declared in (a rule declared after one of a later kind draws a warning).
public enum RuleKindOrder: Int, Sendable, Hashable, Comparable, CaseIterable {
    case tcpConnection, tcpSession, tcpContent, monitorFail, httpRequest, redirect, useBackend, useServer

    public static func < (a: Self, b: Self) -> Bool { a.rawValue < b.rawValue }

    /// How HAProxy's warning names a rule of the kind.
    var described: String {
        switch self {
        case .tcpConnection: return "a 'tcp-request connection'"
        case .tcpSession: return "a 'tcp-request session'"
        case .tcpContent: return "a 'tcp-request content'"
        case .monitorFail: return "a 'monitor fail'"
        case .httpRequest: return "an 'http-request'"
        case .redirect: return "a 'redirect'"
        case .useBackend: return "a 'use_backend'"
        case .useServer: return "a 'use-server'"
        }
    }
}

/// The services `http-request use-service` can hand a request to.
public enum HTTPService: String, Sendable {
    case prometheusExporter = "prometheus-exporter"
}

public final class HTTPRule: Sendable {
    public let action: HTTPAction
    public let condition: RuleCondition?
    public let location: SourceLocation

    /// The most used header and variable actions again, as a tag and plain stored properties:
    /// switching over `action` copies the case's payload out of the rule (a retain and a
    /// release of each reference, for every rule of every request), reading these does not.
    public enum Common: Sendable { case setHeader, addHeader, deleteHeader, setVariable, other }
    public let common: Common
    /// The header of `set-header`/`add-header`/`del-header` (exact name).
    public let headerName: String
    /// The value of `set-header`/`add-header`.
    public let valueFormat: LogFormatString?
    /// The variable and expression of `set-var`.
    public let variable: VariableName?
    public let expression: SampleExpression?

    public init(action: HTTPAction, condition: RuleCondition?, location: SourceLocation) {
        self.action = action
        self.condition = condition
        self.location = location
        var common = Common.other, headerName = "", valueFormat: LogFormatString? = nil
        var variable: VariableName? = nil, expression: SampleExpression? = nil
        switch action {
        case .setHeader(let name, let format): (common, headerName, valueFormat) = (.setHeader, name, format)
        case .addHeader(let name, let format): (common, headerName, valueFormat) = (.addHeader, name, format)
        case .delHeader(let name, .exact): (common, headerName) = (.deleteHeader, name)
        case .setVar(let name, let e): (common, variable, expression) = (.setVariable, name, e)
        default: break
        }
        self.common = common
        self.headerName = headerName
        self.valueFormat = valueFormat
        self.variable = variable
        self.expression = expression
    }
}

/// One action of a `tcp-request` / `tcp-response` rule.
public enum TCPAction: Sendable {
    case accept
    case reject
    case setVar(VariableName, SampleExpression)
    case setVarFormat(VariableName, LogFormatString)
    case unsetVar(VariableName)
    case capture(SampleExpression, length: Int)
    case expectProxy
    case setSource(SampleExpression)
    case setDestination(SampleExpression)
    case setLogLevel(String)
    /// `switch-mode http`: the stream is parsed as HTTP (already so for HTTP frontends).
    case switchToHTTP
    case track(StickTrackAction)
    case stickCounter(StickCounterAction)
    case ignored(String)
}

public final class TCPRule: Sendable {
    public enum Phase: String, Sendable { case connection, session, content }
    public let phase: Phase
    public let action: TCPAction
    public let condition: RuleCondition?
    public let location: SourceLocation

    public init(phase: Phase, action: TCPAction, condition: RuleCondition?, location: SourceLocation) {
        self.phase = phase
        self.action = action
        self.condition = condition
        self.location = location
    }
}

/// `use_backend <name|fmt> [if|unless cond]`.
public final class BackendSwitchRule: @unchecked Sendable {
    public let target: LogFormatString
    public let condition: RuleCondition?
    public let location: SourceLocation
    /// `target` and `condition` as the request path reads them: without counting references
    /// (the two properties above keep the objects alive as long as the rule).
    private let uncountedTarget: Unmanaged<LogFormatString>
    private let uncountedCondition: Unmanaged<RuleCondition>?

    public init(target: LogFormatString, condition: RuleCondition?, location: SourceLocation) {
        self.target = target
        self.condition = condition
        self.location = location
        uncountedTarget = .passUnretained(target)
        uncountedCondition = condition.map { .passUnretained($0) }
    }
    /// The name when it is fixed (checked at load).
    public var fixedName: String? { target.constant }

    /// The backend this rule names for the request, nil when its condition does not hold.
    /// Every request asks every rule until one names a backend.
    public func backendName(_ context: SampleContext) -> String? {
        if let condition = uncountedCondition, !condition._withUnsafeGuaranteedRef({ $0.matches(context) }) { return nil }
        return uncountedTarget._withUnsafeGuaranteedRef { $0.evaluate(context) }
    }
}

/// `use-server <server> [if|unless cond]`.
public final class ServerSwitchRule: Sendable {
    public let server: LogFormatString
    public let condition: RuleCondition?
    public let location: SourceLocation

    public init(server: LogFormatString, condition: RuleCondition?, location: SourceLocation) {
        self.server = server
        self.condition = condition
        self.location = location
    }
}

extension LocalReply.Body {
    public var isErrorPage: Bool { if case .errorPage = self { return true } else { return false } }
    public var hasContent: Bool {
        switch self {
        case .bytes, .format: return true
        default: return false
        }
    }
}
