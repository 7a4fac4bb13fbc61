/// What a fetch needs to read, provided by whoever evaluates rules (the worker's HTTP and TCP
/// sessions, a test). Everything returns nil when it does not exist yet at this point of
/// the stream (no response before the server answered, no backend before routing...).
public protocol SampleContext: AnyObject {
    // Connection
    var clientAddress: SampleValue? { get }
    var clientPort: Int? { get }
    var localAddress: SampleValue? { get }
    var localPort: Int? { get }
    /// What the client connection's TLS negotiated (nil: plain), and the server connection's.
    var frontTLS: TLSSessionFacts? { get }
    var backTLS: TLSSessionFacts? { get }

    // Proxies
    var frontendName: String { get }
    var backendName: String? { get }
    var serverName: String? { get }
    /// A figure of the running proxies (`fe_conn`, `be_conn`, `nbsrv`...). `proxy` nil means
    /// the current frontend or backend.
    func proxyFigure(_ figure: ProxyFigure, proxy: String?, server: String?) -> Int64?

    // HTTP request
    var requestMethod: String? { get }
    var requestTarget: String? { get }
    /// The target's path (no scheme, authority or query): many ACLs read it.
    var requestPath: String? { get }
    /// `1.0`, `1.1`.
    var requestVersion: String? { get }
    /// Every request header line, in order, as name and value.
    var requestHeaderLines: [(name: String, value: String)] { get }
    /// The values of every line of one header, in order; `name` is lowercase. (The fetches
    /// that name a header use this: no other line is turned into strings.)
    func headerValues(_ name: String, response: Bool) -> [String]
    /// Offers the bytes of each value of request header `name` (lowercase; `split`: each
    /// comma-separated part, blanks trimmed, as `hdr` makes them) to `body`, in order, until it
    /// returns true; returns whether one did. Nil when the context cannot read them in place
    /// (ACLs then take the fetch's values as strings).
    func anyRequestHeaderValue(named name: UnsafeBufferPointer<UInt8>, split: Bool, _ body: (UnsafeBufferPointer<UInt8>) -> Bool) -> Bool?
    /// Offers the bytes of `requestPath` to `body` and returns its answer; nil when there is
    /// no path. (Path ACLs, many per request in real configurations, read it this way.)
    func requestPathMatches(_ body: (UnsafeBufferPointer<UInt8>) -> Bool) -> Bool?
    var requestBody: [UInt8]? { get }
    /// The whole request head as received (`req.len`, `req.payload` before HTTP parsing).
    var requestPayload: [UInt8]? { get }
    /// The `http-request capture` / `capture request header` slots.
    func capturedRequestHeader(_ index: Int) -> String?
    func capturedResponseHeader(_ index: Int) -> String?

    // HTTP response
    var responseStatus: Int? { get }
    var responseHeaderLines: [(name: String, value: String)] { get }

    // Variables, users
    func variable(_ name: VariableName) -> SampleValue?
    func setVariable(_ name: VariableName, _ value: SampleValue?)
    func userlist(named: String) -> Userlist?

    /// Seconds since the epoch (`date`), and a random number (`rand`).
    var epochSeconds: Int64 { get }
    func random(below: UInt64) -> UInt64

    /// The request's `unique-id-format` value (`unique-id`), if the proxy has one.
    var uniqueID: String? { get }

    // Stick tables
    /// The running worker's tables (nil where there are none, e.g. on the runtime API).
    var stickTables: StickTableRegistry? { get }
    /// The stream's tracked entries (`sc0`..`sc2`), nil before anything is tracked.
    var stickCounters: StickCounters? { get }

    /// Response rules are running: `hdr()` reads the response's headers (it reads the
    /// request's in request rules, as in HAProxy).
    var readsResponse: Bool { get }
}

extension SampleContext {
    public var readsResponse: Bool { false }
    public func anyRequestHeaderValue(named name: UnsafeBufferPointer<UInt8>, split: Bool,
                                      _ body: (UnsafeBufferPointer<UInt8>) -> Bool) -> Bool? { nil }
    public func requestPathMatches(_ body: (UnsafeBufferPointer<UInt8>) -> Bool) -> Bool? {
        guard var path = requestPath else { return nil }
        return path.withUTF8(body)
    }
    public var uniqueID: String? { nil }
    public var stickTables: StickTableRegistry? { nil }
    public var stickCounters: StickCounters? { nil }
}

/// The proxy figures fetches can read.
public enum ProxyFigure: Sendable {
    case frontendConnections, backendConnections, usableServers, serverIsUp, connectionSlots, queued, averageQueue
    case frontendRequestRate, backendSessionRate, serverConnections
    /// The numeric ids (`id` keyword, else the order of declaration) of the stream's frontend,
    /// backend and server.
    case frontendID, backendID, serverID
}

/// Where a rule runs; it decides which fetches a rule may use.
public struct RuleStage: OptionSet, Sendable, Hashable {
    public let rawValue: UInt16
    public init(rawValue: UInt16) { self.rawValue = rawValue }

    public static let tcpConnection = RuleStage(rawValue: 1 << 0)
    public static let tcpSession = RuleStage(rawValue: 1 << 1)
    public static let tcpRequestContent = RuleStage(rawValue: 1 << 2)
    public static let tcpResponseContent = RuleStage(rawValue: 1 << 3)
    public static let httpRequest = RuleStage(rawValue: 1 << 4)
    public static let httpResponse = RuleStage(rawValue: 1 << 5)
    public static let httpAfterResponse = RuleStage(rawValue: 1 << 6)
    public static let log = RuleStage(rawValue: 1 << 7)
    public static let backendSwitching = RuleStage(rawValue: 1 << 8)
    public static let serverSwitching = RuleStage(rawValue: 1 << 9)
}

/// What a fetch reads, as HAProxy names it in its "may not be reliably used here" message.
public struct SampleUse: OptionSet, Sendable, Hashable {
    public let rawValue: UInt16
    public init(rawValue: UInt16) { self.rawValue = rawValue }

    public static let internalState = SampleUse(rawValue: 1 << 0)
    public static let layer4 = SampleUse(rawValue: 1 << 1)
    public static let requestContent = SampleUse(rawValue: 1 << 2)
    public static let httpRequest = SampleUse(rawValue: 1 << 3)
    public static let httpRequestHeaders = SampleUse(rawValue: 1 << 4)
    public static let httpResponse = SampleUse(rawValue: 1 << 5)
    public static let httpResponseHeaders = SampleUse(rawValue: 1 << 6)
    public static let responseContent = SampleUse(rawValue: 1 << 7)
    public static let backend = SampleUse(rawValue: 1 << 8)
    public static let server = SampleUse(rawValue: 1 << 9)

    /// The headers of either direction: what `hdr()` reads, the request's in request rules and
    /// the response's in response rules. A fetch that uses both needs only one of them.
    public static let eitherHeaders: SampleUse = [.httpRequestHeaders, .httpResponseHeaders]

    /// Whether a fetch that reads `self` works where `available` is.
    public func isAvailable(in available: SampleUse) -> Bool {
        guard isSuperset(of: Self.eitherHeaders) else { return available.isSuperset(of: self) }
        return !available.isDisjoint(with: Self.eitherHeaders) && available.isSuperset(of: subtracting(Self.eitherHeaders))
    }

    /// HAProxy's words for what `available` lacks: the first missing use, or both header
    /// kinds of a fetch that reads either ("HTTP request headers,HTTP response headers").
    func missingName(in available: SampleUse) -> String? {
        guard !isAvailable(in: available) else { return nil }
        let names: [(SampleUse, String)] = [
            (.httpRequestHeaders, "HTTP request headers"), (.httpRequest, "HTTP request"),
            (.httpResponseHeaders, "HTTP response headers"), (.httpResponse, "HTTP response"),
            (.requestContent, "request buffer"), (.responseContent, "response buffer"),
            (.backend, "backend"), (.server, "server"),
        ]
        if isSuperset(of: Self.eitherHeaders), available.isDisjoint(with: Self.eitherHeaders) {
            return "HTTP request headers,HTTP response headers"
        }
        for (use, name) in names where contains(use) && !available.contains(use) { return name }
        return nil
    }

    /// What rules of a stage can read; `inBackend`: in a proxy that can be a backend, whose
    /// request rules run once the backend is known.
    static func available(at stage: RuleStage, inBackend: Bool = false) -> SampleUse {
        var uses: SampleUse = [.internalState, .layer4]
        if inBackend, stage.contains(.httpRequest) || stage.contains(.tcpRequestContent) { uses.insert(.backend) }
        if stage.contains(.tcpConnection) || stage.contains(.tcpSession) { return uses }
        if stage.contains(.tcpRequestContent) { uses.formUnion([.requestContent, .httpRequest, .httpRequestHeaders]) }
        if stage.contains(.httpRequest) || stage.contains(.backendSwitching) {
            uses.formUnion([.requestContent, .httpRequest, .httpRequestHeaders])
        }
        if stage.contains(.serverSwitching) { uses.formUnion([.requestContent, .httpRequest, .httpRequestHeaders, .backend]) }
        if stage.contains(.tcpResponseContent) { uses.formUnion([.httpRequest, .responseContent, .backend, .server]) }
        if stage.contains(.httpResponse) || stage.contains(.httpAfterResponse) {
            uses.formUnion([.httpRequest, .httpResponse, .httpResponseHeaders, .responseContent, .backend, .server])
        }
        // At log time the messages are gone: what the stream noted of them stays (the method,
        // the status, captures), their headers and buffered contents do not (HAProxy refuses
        // `%[req.hdr(...)]` in a log-format for that reason).
        if stage.contains(.log) { uses = [.internalState, .layer4, .httpRequest, .httpResponse, .backend, .server] }
        return uses
    }
}
