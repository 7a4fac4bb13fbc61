import Foundation
import NIOConcurrencyHelpers
import NIOCore
import Shared

/// `proc.` variables: one store for the whole worker. Reads and writes take a lock for the
/// time of a dictionary access.
final class ProcessVariables: Sendable {
    private let values = NIOLockedValueBox<[String: SampleValue]>([:])
    func get(_ name: String) -> SampleValue? { values.withLockedValue { $0[name] } }
    func set(_ name: String, _ value: SampleValue?) { values.withLockedValue { $0[name] = value } }
    var all: [String: SampleValue] { values.withLockedValue { $0 } }
}

/// What rules read and write for one client connection (HTTP or TCP): the `SampleContext`
/// of its streams. It lives as long as the connection; `beginTransaction` clears the
/// per-request state (`txn.`, `req.`, `res.` variables, captures) for each HTTP request.
/// Only the connection's event loop touches it.
final class StreamContext: SampleContext {
    let runtime: WorkerRuntime
    let frontend: Frontend
    var backend: Backend?
    var server: Server?
    var clientSocket: SocketAddress?
    var localSocket: SocketAddress?
    /// What the client connection's TLS negotiated (nil: plain), and the current server
    /// connection's.
    var clientTLS: TLSSessionFacts?
    var serverTLS: TLSSessionFacts?

    /// The heads rules read and edit. Edits go through `editRequest`/`editResponse`, in place
    /// (a property observer would copy the whole head for every edit).
    private var storedRequest: MessageHead?
    /// The request head as the HTTP session holds it (its `request`): read and edited in
    /// place, one head for the session and its rules, never copied between them. Edits made
    /// this way leave what rules derived from the head cached: the session makes them when
    /// no rule of the request is left to run, or says so (`requestReplaced`).
    var heldRequest: MessageHead? {
        _read { yield storedRequest }
        _modify { yield &storedRequest }
    }

    /// Whether a request head is held, and its method: asked on every exchange, without the
    /// `_read` coroutines of `heldRequest` and `HTTPSession.request` (each allocates its frame
    /// when it is not inlined).
    var holdsRequest: Bool {
        switch storedRequest {
        case .none: return false
        case .some: return true
        }
    }
    var heldRequestMethod: Substring? { storedRequest?.method }

    /// A new (or rewritten) request head: nothing derived from the previous one holds.
    func requestReplaced(by head: consuming MessageHead?) {
        storedRequest = consume head
        requestEdited()
    }
    /// The request line's parts as strings, made once per request (rules read them often).
    private var target: String?
    private var method: String?
    private var path: String?
    /// The path's bytes, in memory no reference counting reaches (`requestPathMatches`): a
    /// path ACL reading the cached string retained and released it, for each ACL of each
    /// request. `pathLength` -1: not made yet for this request; -2: the request has no path.
    private var pathBytes = UnsafeMutableBufferPointer<UInt8>(start: nil, count: 0)
    private var pathLength = -1
    /// The values of the request headers rules asked for, by lowercase name (a short list:
    /// rules ask for the same few headers again and again, `Host` above all).
    private var requestValues: [HeaderValues] = []
    private struct HeaderValues {
        let name: String
        let values: [String]
    }
    var response: MessageHead? {
        get { storedResponse }
        set {
            storedResponse = newValue
            responseLines = nil
        }
    }
    private var storedResponse: MessageHead?

    func editRequest(_ body: (inout MessageHead) -> Void) {
        guard storedRequest != nil else { return }
        body(&storedRequest!)
        requestEdited()
    }

    /// A header edit of the request: the request line and the other headers' values read so
    /// far stay valid. `name` is the header changed, nil when the edit may touch any.
    func editRequestHeaders(_ name: String?, _ body: (inout MessageHead) -> Void) {
        guard storedRequest != nil else { return }
        body(&storedRequest!)
        requestLines = nil
        if let name { forgetValues(of: name) } else { requestValues.removeAllKeepingStorage() }
    }

    /// The cached values of the header `name` are stale.
    private func forgetValues(of name: String) {
        // (Checked first: removing nothing still moves the elements around.)
        if !requestValues.isEmpty, requestValues.contains(where: { HTTPField.sameName($0.name, name) }) {
            requestValues.removeAll { HTTPField.sameName($0.name, name) }
        }
    }

    /// The header edits rules make most (`set-header`, `add-header`, `del-header`), without a
    /// closure: one capturing the name and value costs a retain and a release of each.
    enum HeaderEdit { case set, add, remove }

    func editHeader(_ edit: HeaderEdit, _ name: String, _ value: String, response: Bool) {
        if response {
            guard storedResponse != nil else { return }
            Self.apply(edit, name, value, to: &storedResponse!)
            responseLines = nil
            return
        }
        guard storedRequest != nil else { return }
        Self.apply(edit, name, value, to: &storedRequest!)
        requestLines = nil
        forgetValues(of: name)
    }

    private static func apply(_ edit: HeaderEdit, _ name: String, _ value: String, to head: inout MessageHead) {
        switch edit {
        case .set: head.setHeader(name, value)
        case .add: head.addHeader(name, value)
        case .remove: head.removeHeader(name)
        }
    }

    func editResponse(_ body: (inout MessageHead) -> Void) {
        guard storedResponse != nil else { return }
        body(&storedResponse!)
        responseLines = nil
    }
    private var requestLines: [(name: String, value: String)]?
    private var responseLines: [(name: String, value: String)]?
    var body: [UInt8]?
    /// The bytes buffered for `tcp-request content` inspection.
    var payload: [UInt8]?

    private var sessionVariables: [String: SampleValue] = [:]
    /// `txn.`, `req.`, `res.` variables: a short list (names compared, not hashed).
    private var transactionVariables: [(name: VariableName, value: SampleValue)] = []
    /// Bytes the variables of each scope use, against `tune.vars.*-max-size`.
    private var sessionBytes = 0
    private var transactionBytes = 0
    /// `set-timeout server|tunnel`.
    var timeoutOverride: (server: Bool, ms: Int64)?
    var requestCaptures: [String?] = []
    var responseCaptures: [String?] = []
    /// `set-log-level`: nil keeps the default; "silent" suppresses the log line.
    var logLevel: String?
    /// Response rules are running (`hdr()` and `cookie()` read the response).
    var readsResponse = false
    /// `unique-id-format`'s value for the current request.
    var uniqueID: String?
    /// The entries `track-sc` rules track, made by the first of them.
    private(set) var counters: StickCounters?
    /// What the current stream moved and answered, for its trackers (`bytes_in_cnt`...).
    var streamBytesIn: Int64 = 0
    var streamBytesOut: Int64 = 0
    var streamStatus: Int?
    /// The keys `stick on|store-request` rules store once the server is known.
    var pendingStickStores: [(table: StickTable, key: StickKey)] = []

    init(runtime: WorkerRuntime, frontend: Frontend) {
        self.runtime = runtime
        self.frontend = frontend
    }

    func beginTransaction() {
        streamBytesIn = 0
        streamBytesOut = 0
        streamStatus = nil
        if !pendingStickStores.isEmpty { pendingStickStores.removeAll() }
        transactionVariables.removeAllKeepingStorage()
        transactionBytes = 0
        timeoutOverride = nil
        requestCaptures = []
        responseCaptures = []
        // The request head is the session's (`heldRequest`), already this transaction's.
        requestEdited()
        response = nil
        finishedStatus = nil
        body = nil
        backend = nil
        server = nil
        logLevel = nil
        uniqueID = nil
    }

    /// The request head changed: cached header lines are stale.
    /// The request head changed: what was derived from it is stale.
    private func requestEdited() {
        requestLines = nil
        target = nil
        method = nil
        path = nil
        pathLength = -1
        if !requestValues.isEmpty { requestValues.removeAllKeepingStorage() }
    }

    // MARK: - Stick tables

    var stickTables: StickTableRegistry? { runtime.stickTables }
    var stickCounters: StickCounters? { counters }

    /// `track-scN <key> [table <t>]`.
    func track(_ action: StickTrackAction, level: StickCounters.Level, countsRequest: Bool) {
        if let counters, counters.isTracking(action.counter, level) { return }
        guard let table = runtime.stickTables[action.table], let value = action.key.evaluate(self),
              let key = StickKey(value, type: table.keyType) else { return }
        let counters = self.counters ?? StickCounters()
        self.counters = counters
        counters.track(action.counter, key: key, in: table, level: level, countsRequest: countsRequest)
    }

    /// The stream (an HTTP exchange, a TCP session) ended: its trackers count what it did
    /// and let their entries go.
    func endStickStream() {
        guard let counters else { return }
        if let status = streamStatus { counters.countStatus(status) }
        counters.countBytes(in: streamBytesIn, out: streamBytesOut)
        streamBytesIn = 0
        streamBytesOut = 0
        streamStatus = nil
        counters.endStream()
    }

    /// The connection closed: the connection's trackers let go too.
    func endStickSession() {
        guard let counters else { return }
        endStickStream()
        counters.endSession()
    }

    // MARK: - SampleContext

    var clientAddress: SampleValue? { Self.sample(clientSocket) }
    var clientPort: Int? { clientSocket?.port }
    var localAddress: SampleValue? { Self.sample(localSocket) }
    var localPort: Int? { localSocket?.port }
    var frontTLS: TLSSessionFacts? { clientTLS }
    var backTLS: TLSSessionFacts? { serverTLS }

    static func sample(_ address: SocketAddress?) -> SampleValue? {
        switch address {
        case .v4(let a):
            return .ipv4(UInt32(bigEndian: a.address.sin_addr.s_addr))
        case .v6(let a):
            var storage = a.address.sin6_addr
            let bytes = withUnsafeBytes(of: &storage) { Array($0) }
            guard let v6 = IPv6Address(bytes: bytes) else { return nil }
            if let v4 = v6.mappedIPv4 { return .ipv4(v4) }
            return .ipv6(v6)
        default:
            return nil
        }
    }

    var frontendName: String { frontend.name }
    /// Until a backend is chosen the stream's backend is its frontend, as in HAProxy (`be_name`,
    /// `be_id` and `%b` in a frontend's rules, or after a local answer).
    var backendName: String? { backend?.name ?? frontend.name }
    var serverName: String? { server?.name }

    func proxyFigure(_ figure: ProxyFigure, proxy: String?, server serverName: String?) -> Int64? {
        switch figure {
        case .frontendID: return Int64(frontend.settings.id)
        case .backendID: return Int64(backend?.settings.id ?? frontend.settings.id)
        case .serverID: return server.map { Int64($0.id) }
        case .frontendConnections:
            let f = proxy.map { name in runtime.frontends.first { $0.name == name } } ?? frontend
            return f.map { Int64($0.currentSessions.load(ordering: .relaxed)) }
        case .frontendRequestRate:
            let f = proxy.map { name in runtime.frontends.first { $0.name == name } } ?? frontend
            return f.map { Int64($0.counters.requestRate.perSecond()) }
        default:
            break
        }
        guard let b = proxy.map({ runtime.backends[$0] }) ?? backend else { return nil }
        switch figure {
        case .backendConnections: return Int64(b.currentSessions.load(ordering: .relaxed))
        case .backendSessionRate: return Int64(b.counters.sessionRate.perSecond())
        case .usableServers: return Int64(b.servers.filter { $0.isUsable }.count)
        case .queued: return Int64(b.queued.load(ordering: .relaxed))
        case .averageQueue:
            let usable = b.servers.filter { $0.isUsable }.count
            return usable == 0 ? Int64(b.queued.load(ordering: .relaxed)) : Int64(b.queued.load(ordering: .relaxed) / usable)
        case .connectionSlots:
            var slots = 0
            for s in b.servers where s.isUsable {
                if s.maxconn == 0 { return -1 }
                slots += max(0, s.maxconn - s.served.load(ordering: .relaxed))
            }
            return Int64(slots)
        case .serverIsUp:
            guard let name = serverName, let s = b.server(named: name) else { return nil }
            return s.isUsable ? 1 : 0
        case .serverConnections:
            guard let name = serverName, let s = b.server(named: name) else { return nil }
            return Int64(s.served.load(ordering: .relaxed))
        default:
            return nil
        }
    }

    var requestMethod: String? {
        if let method { return method }
        guard let m = storedRequest?.method else { return nil }
        let text = String(m)
        method = text
        return text
    }

    var requestTarget: String? {
        if let target { return target }
        guard let t = storedRequest?.target else { return nil }
        let text = String(t)
        target = text
        return text
    }

    var requestPath: String? {
        if let path { return path }
        guard let target = requestTarget, let p = URLParts.path(target) else { return nil }
        let text = String(p)
        path = text
        return text
    }

    func requestPathMatches(_ body: (UnsafeBufferPointer<UInt8>) -> Bool) -> Bool? {
        if pathLength == -1 { keepPathBytes() }
        guard pathLength >= 0 else { return nil }
        return body(UnsafeBufferPointer(start: pathBytes.baseAddress, count: pathLength))
    }

    private func keepPathBytes() {
        // The origin form (`/p?q`, and `*`) has its path at the start of the target: it is
        // copied from the head's bytes, without a target and a path string made and kept
        // (and retained and released on the way) for every request.
        let originForm = storedRequest?.target.utf8.withContiguousStorageIfAvailable { target -> Bool in
            guard let first = target.first, first == UInt8(ascii: "/") || first == UInt8(ascii: "*") else { return false }
            keepPath(UnsafeBufferPointer(rebasing: target[..<(target.firstIndex(of: UInt8(ascii: "?")) ?? target.count)]))
            return true
        }
        if originForm == true { return }
        guard let path = requestPath else {
            pathLength = -2
            return
        }
        path.withBytesInPlace { keepPath($0) }
    }

    private func keepPath(_ bytes: UnsafeBufferPointer<UInt8>) {
        if bytes.count > pathBytes.count {
            pathBytes.deallocate()
            pathBytes = .allocate(capacity: max(bytes.count, 64))
        }
        if let from = bytes.baseAddress { pathBytes.baseAddress!.update(from: from, count: bytes.count) }
        pathLength = bytes.count
    }

    deinit {
        pathBytes.deallocate()
    }

    func headerValues(_ name: String, response: Bool) -> [String] {
        if response { return storedResponse?.allValuesInPlace(lowercasedName: name) ?? [] }
        // A short list compared by name is cheaper than hashing.
        let length = name.utf8.count
        for entry in requestValues where entry.name.utf8.count == length && entry.name == name { return entry.values }
        let values = storedRequest?.allValuesInPlace(lowercasedName: name) ?? []
        if requestValues.isEmpty { requestValues.reserveCapacity(8) }
        requestValues.append(HeaderValues(name: name, values: values))
        return values
    }
    func anyRequestHeaderValue(named name: UnsafeBufferPointer<UInt8>, split: Bool, _ body: (UnsafeBufferPointer<UInt8>) -> Bool) -> Bool? {
        storedRequest?.anyValueInPlace(named: name, split: split, body) ?? false
    }

    var requestVersion: String? { storedRequest.map { $0.versionMinor == 0 ? "1.0" : "1.1" } }

    var requestHeaderLines: [(name: String, value: String)] {
        if let requestLines { return requestLines }
        let lines = storedRequest?.headerFields.map { ($0.name, $0.value) } ?? []
        requestLines = lines
        return lines
    }

    var requestBody: [UInt8]? { body }
    var requestPayload: [UInt8]? { payload }

    func capturedRequestHeader(_ index: Int) -> String? { index < requestCaptures.count ? requestCaptures[index] : nil }
    func capturedResponseHeader(_ index: Int) -> String? { index < responseCaptures.count ? responseCaptures[index] : nil }

    var responseStatus: Int? { storedResponse?.status ?? finishedStatus }

    /// The status of a response head that left the context (`takeResponse`), or the one the
    /// log line reports: log-format samples read `status` when the head is gone.
    private var finishedStatus: Int?

    /// Moves the response head out once its rules ran: it goes to the client, and nothing
    /// reads its headers afterwards (HAProxy refuses response header fetches in log
    /// formats). Taking it spares a copy of the head, with a retain and a release of each of
    /// its references, on every response.
    func takeResponse() -> MessageHead? {
        guard storedResponse != nil else { return nil }
        finishedStatus = storedResponse!.status
        responseLines = nil
        return storedResponse.take()
    }

    /// The stream is being logged: what log-format samples read of its messages (`method`,
    /// `status`) when no rule kept the heads.
    func noteForLog(method: Substring?, status: Int?) {
        if storedRequest == nil, self.method == nil, let method { self.method = String(method) }
        if storedResponse == nil, finishedStatus == nil { finishedStatus = status }
    }
    var responseHeaderLines: [(name: String, value: String)] {
        if let responseLines { return responseLines }
        let lines = response?.headerFields.map { ($0.name, $0.value) } ?? []
        responseLines = lines
        return lines
    }

    func variable(_ name: VariableName) -> SampleValue? {
        switch name.scope {
        case .proc: return runtime.processVariables.get(name.name)
        case .sess: return sessionVariables[name.name]
        case .txn, .req, .res, .check:
            let length = name.name.utf8.count
            for entry in transactionVariables where entry.name.scope == name.scope && entry.name.name.utf8.count == length
                && entry.name.name == name.name {
                return entry.value
            }
            return nil
        }
    }

    func setVariable(_ name: VariableName, _ value: SampleValue?) {
        let limit = runtime.variableLimits[name.scope]
        switch name.scope {
        case .proc:
            if let limit, let value, Self.size(value) > limit { return }
            runtime.processVariables.set(name.name, value)
        case .sess:
            let delta = (value.map(Self.size) ?? 0) - (sessionVariables[name.name].map(Self.size) ?? 0)
            if let limit, sessionBytes + delta > limit { return }
            sessionBytes += delta
            sessionVariables[name.name] = value
        case .txn, .req, .res, .check:
            let index = transactionVariables.firstIndex { $0.name == name }
            let delta = (value.map(Self.size) ?? 0) - (index.map { Self.size(transactionVariables[$0].value) } ?? 0)
            if let limit, transactionBytes + delta > limit { return }
            transactionBytes += delta
            switch (index, value) {
            case (let i?, let v?): transactionVariables[i].value = v
            case (let i?, nil): transactionVariables.remove(at: i)
            case (nil, let v?): transactionVariables.append((name, v))
            case (nil, nil): break
            }
        }
    }

    /// What a value counts against `tune.vars.*-max-size`.
    static func size(_ v: SampleValue) -> Int {
        switch v {
        case .string(let s): return s.utf8.count
        case .binary(let b): return b.count
        default: return 8
        }
    }

    /// Stores a capture in its slot (`slot` nil: the next free one).
    func capture(_ value: String?, slot: Int?, response: Bool) {
        var list = response ? responseCaptures : requestCaptures
        let index = slot ?? list.count
        while list.count <= index { list.append(nil) }
        list[index] = value
        if response { responseCaptures = list } else { requestCaptures = list }
    }

    /// `set-src` / `set-dst`: the address (and port, kept) rules and logs see from now on.
    func overrideAddress(_ value: SampleValue, source: Bool) {
        let current = source ? clientSocket : localSocket
        let port = current?.port ?? 0
        guard let text = value.cast(to: .address)?.asString, let address = try? SocketAddress(ipAddress: text, port: port) else { return }
        if source { clientSocket = address } else { localSocket = address }
    }

    func userlist(named name: String) -> Userlist? { runtime.configuration.userlists[name] }

    var epochSeconds: Int64 { Int64(Date().timeIntervalSince1970) }
    func random(below: UInt64) -> UInt64 { UInt64.random(in: 0..<below) }
}

/// One proxy's rules as the streams run them: built once from its `ProxyRules`, read by
/// reference (the configuration structs are large; copying them per request costs).
final class ProxyRuleSet: Sendable {
    let name: String
    let httpRequest: [HTTPRule]
    /// `option http-restrict-req-hdr-names`, applied after `httpRequest`.
    let headerNames: HeaderNamePolicy
    let httpResponse: [HTTPRule]
    let httpAfterResponse: [HTTPRule]
    /// `tcp-request content` rules (run before `http-request` in HTTP streams).
    let tcpContent: [TCPRule]
    let useBackends: [BackendSwitchRule]
    let useServers: [ServerSwitchRule]
    let stickRules: [StickRule]
    let persistRules: [PersistRule]
    let monitorURI: String?
    let monitorFail: [RuleCondition]
    let errorFiles: [Int: [UInt8]]
    let timeouts: Timeouts
    /// `capture request header <name> len <n>` / `capture response header`: slot, lowercase
    /// name, length.
    let requestHeaderCaptures: [(slot: Int, name: String, length: Int)]
    let responseHeaderCaptures: [(slot: Int, name: String, length: Int)]
    /// The statistics page (`stats enable`...), in an HTTP proxy.
    let stats: StatsSettings?
    /// Whether `stats` is set (asked on every request: reading the optional copies the settings).
    let servesStats: Bool
    /// Capture slots declared (`capture ... header`, `declare capture`, `http-request capture`).
    let requestCaptureCount: Int
    let responseCaptureCount: Int

    init(_ settings: ProxySettings) {
        let rules = settings.rules
        name = settings.name
        headerNames = settings.options.requestHeaderNames
        httpRequest = rules.httpRequest
        httpResponse = rules.httpResponse
        httpAfterResponse = rules.httpAfterResponse
        tcpContent = rules.tcpRequest.filter { $0.phase == .content }
        useBackends = rules.useBackends
        useServers = rules.useServers
        stickRules = rules.stickRules
        persistRules = rules.persistRules
        monitorURI = rules.monitorURI
        monitorFail = rules.monitorFail
        errorFiles = settings.errorFiles
        timeouts = settings.timeouts
        stats = settings.mode == .http ? settings.stats : nil
        servesStats = stats != nil
        requestCaptureCount = rules.requestCaptures.count
        responseCaptureCount = rules.responseCaptures.count
        requestHeaderCaptures = rules.requestCaptures.enumerated().compactMap { slot, capture in
            capture.name.map { (slot, $0.lowercased(), capture.length) }
        }
        responseHeaderCaptures = rules.responseCaptures.enumerated().compactMap { slot, capture in
            capture.name.map { (slot, $0.lowercased(), capture.length) }
        }
    }

    var hasResponseRules: Bool { !httpResponse.isEmpty || !httpAfterResponse.isEmpty || !responseHeaderCaptures.isEmpty }

    /// Fills the declared header captures of one side (the last value of each header,
    /// truncated to its length, as HAProxy keeps it).
    func captureHeaders(_ c: StreamContext, response: Bool) {
        // (Asked first: walking an empty list still retains and releases it.)
        if response ? responseHeaderCaptures.isEmpty : requestHeaderCaptures.isEmpty { return }
        for capture in response ? responseHeaderCaptures : requestHeaderCaptures {
            guard let value = c.headerValues(capture.name, response: response).last else { continue }
            c.capture(String(value.utf8.prefix(capture.length)) ?? value, slot: capture.slot, response: response)
        }
    }
}
