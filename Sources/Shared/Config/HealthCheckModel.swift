/// How a proxy checks its servers: a plain TCP connect, an HTTP exchange (`option httpchk`
/// with `http-check` rules) or a `tcp-check` sequence (`option tcp-check`).
public enum HealthCheckKind: Sendable, Equatable {
    case connect, http, tcpCheck
}

/// What an `expect` rule matches.
public enum CheckMatch: Sendable, Equatable {
    /// `status 200`, `status 200-399`, `status 200,301-302`.
    case status([ClosedRange<Int>])
    case statusPattern(String)
    case string(String)
    case stringPattern(String)
    case binary([UInt8])
    case binaryPattern(String)
}

public struct CheckExpectation: Sendable, Equatable {
    public var negated = false
    public var match: CheckMatch
    /// The rule's text as HAProxy prints it in check descriptions (`expect string 'ALIVE'`).
    public var label: String
    public init(match: CheckMatch, label: String) {
        self.match = match
        self.label = label
    }
}

/// One step of a `tcp-check` or `http-check` sequence.
public enum CheckStep: Sendable, Equatable {
    /// `connect [port <p>] [addr <ip>] [send-proxy]` (a nil port means the server's check port).
    case connect(port: Int?, address: String?, sendProxy: Bool)
    case send([UInt8])
    case httpSend(HTTPCheckRequest)
    case expect(CheckExpectation)
}

/// The request of an HTTP check; a field left nil by `http-check send` comes from
/// `option httpchk` (or HAProxy's default, `OPTIONS / HTTP/1.0`).
public struct HTTPCheckRequest: Sendable, Equatable {
    public var method: String? = nil
    public var uri: String? = nil
    public var version: String? = nil
    public var headers: [HTTPCheckHeader] = []
    public var body: String? = nil
    public init() {}

    /// This request with the gaps filled from `base`.
    public func completed(by base: HTTPCheckRequest) -> HTTPCheckRequest {
        var r = self
        r.method = method ?? base.method
        r.uri = uri ?? base.uri
        r.version = version ?? base.version
        r.headers = base.headers + headers
        r.body = body ?? base.body
        return r
    }

    public var bytes: [UInt8] {
        let version = self.version ?? "HTTP/1.0"
        var text = "\(method ?? "OPTIONS") \(uri ?? "/") \(version)\r\n"
        for header in headers { text += "\(header.name): \(header.value)\r\n" }
        let body = self.body ?? ""
        if !body.isEmpty || version == "HTTP/1.1" { text += "content-length: \(body.utf8.count)\r\n" }
        text += "\r\n" + body
        return Array(text.utf8)
    }
}

public struct HTTPCheckHeader: Sendable, Equatable {
    public var name: String
    public var value: String
    public init(name: String, value: String) {
        self.name = name
        self.value = value
    }
}

/// A proxy's check definition (`option httpchk`, `http-check ...`, `option tcp-check`,
/// `tcp-check ...`), inherited from `defaults` until the proxy states its own rules.
public struct ProxyCheckSettings: Sendable, Equatable {
    public var kind: HealthCheckKind = .connect
    /// `option httpchk [<method>] [<uri>] [<version>]`.
    public var httpRequest = HTTPCheckRequest()
    public var httpSteps: [CheckStep] = []
    public var tcpSteps: [CheckStep] = []
    /// `http-check disable-on-404`: a 404 puts the server in NOLB instead of failing the check.
    public var disableOn404 = false
    /// Set when the rules came from `defaults`: the first rule of the proxy replaces them.
    public var inheritedHTTPSteps = false
    public var inheritedTCPSteps = false
    public init() {}

    /// The steps to run: the rules written, with HAProxy's defaults filled in.
    public var steps: [CheckStep] {
        switch kind {
        case .connect:
            return [.connect(port: nil, address: nil, sendProxy: false)]
        case .tcpCheck:
            var steps = tcpSteps
            if case .connect = steps.first {} else { steps.insert(.connect(port: nil, address: nil, sendProxy: false), at: 0) }
            return steps
        case .http:
            var steps = httpSteps
            if case .connect = steps.first {} else { steps.insert(.connect(port: nil, address: nil, sendProxy: false), at: 0) }
            if !steps.contains(where: { if case .httpSend = $0 { return true } else { return false } }) {
                steps.insert(.httpSend(HTTPCheckRequest()), at: 1)
            }
            steps = steps.map { step in
                guard case .httpSend(let partial) = step else { return step }
                return .httpSend(partial.completed(by: httpRequest))
            }
            if !steps.contains(where: { if case .expect = $0 { return true } else { return false } }) {
                steps.append(.expect(CheckExpectation(match: .status([200...399]), label: "expect status 200-399")))
            }
            return steps
        }
    }
}

/// `observe layer4|layer7`.
public enum ObservedLayer: String, Sendable, Equatable {
    case layer4, layer7
}

/// `on-error`: what `error-limit` consecutive observed errors do.
public enum ObservedErrorAction: String, Sendable, Equatable {
    case fastinter, failCheck = "fail-check", suddenDeath = "sudden-death", markDown = "mark-down"
}

/// A server's check keywords.
public struct ServerCheckSettings: Sendable, Equatable {
    public var fastinterMs: Int64? = nil
    public var downinterMs: Int64? = nil
    public var port: Int? = nil
    public var address: String? = nil
    public var sendProxy = false
    public var agent = false
    public var agentPort: Int? = nil
    public var agentAddress: String? = nil
    public var agentInterMs: Int64? = nil
    public var agentSend: String? = nil
    public var slowstartMs: Int64 = 0
    public var observe: ObservedLayer? = nil
    public var errorLimit = 10
    public var onError: ObservedErrorAction = .failCheck
    /// `on-marked-down shutdown-sessions`.
    public var shutdownSessionsOnDown = false
    /// `on-marked-up shutdown-backup-sessions`.
    public var shutdownBackupSessionsOnUp = false
    public init() {}
}
