import NIOCore
import Shared

/// Runs one check of one server (its health check or its agent) on one event loop, on
/// HAProxy's schedule: `inter` while steady, `fastinter` while changing, `downinter` while
/// down, spread by `spread-checks`. Every method hops to the loop; state lives there.
final class HealthChecker: @unchecked Sendable {
    let server: Server
    let check: ServerCheck
    private let runtime: WorkerRuntime
    let loop: EventLoop
    private let steps: [PlannedStep]
    private let style: CheckStyle
    private let connectTimeoutMs: Int64
    private let readTimeoutMs: Int64
    private var scheduled: Scheduled<Void>?
    private var running: CheckConversation?
    private var stopped = false
    /// When the running check started: the next one is due `inter` after it.
    private var startedAt = 0

    init(server: Server, check: ServerCheck, runtime: WorkerRuntime, loop: EventLoop) {
        self.server = server
        self.check = check
        self.runtime = runtime
        self.loop = loop
        let backend = runtime.backend(of: server)
        (steps, style) = Self.plan(server, backend?.settings.checks ?? ProxyCheckSettings(), agent: check.kind == .agent)
        // HAProxy: with `timeout check`, min(connect, inter) to connect and `timeout check` to
        // read; without it, `inter` for both.
        let settings = server.settings
        let inter = check.kind == .agent ? (settings.checks.agentInterMs ?? settings.interMs) : settings.interMs
        let timeouts = backend?.settings.timeouts ?? Timeouts()
        connectTimeoutMs = max(1, timeouts.check != nil ? min(timeouts.connect ?? inter, inter) : inter)
        readTimeoutMs = max(1, timeouts.check ?? inter)
    }

    func start(afterMs delay: Int) {
        loop.execute { [self] in schedule(in: Int64(delay)) }
    }

    func stop() {
        loop.execute { [self] in
            stopped = true
            scheduled?.cancel()
            scheduled = nil
        }
    }

    /// Runs the check now (after leaving maintenance, or being enabled) unless one is running.
    func wake() {
        loop.execute { [self] in
            guard !stopped, running == nil else { return }
            scheduled?.cancel()
            runNow()
        }
    }

    private func schedule(in ms: Int64) {
        guard !stopped else { return }
        scheduled = loop.scheduleTask(in: .milliseconds(max(0, ms))) { [self] in runNow() }
    }

    private func runNow() {
        scheduled = nil
        guard !stopped, !runtime.isStopping else { return }
        guard check.isActive else { return schedule(in: interval()) }
        let server = self.server
        let agent = check.kind == .agent
        let conversation = CheckConversation(
            loop: loop, steps: steps, style: style, connectTimeoutMs: connectTimeoutMs,
            readTimeoutMs: readTimeoutMs, bufferLimit: runtime.bufferSize,
            target: { address, port in Self.destination(server, address: address, port: port, agent: agent) },
            tls: agent ? nil : checkTLS(server),
            proxyVersion: server.settings.sendProxy ?? .v1,
            source: server.sourceAddress,
            completion: { [self] report in finished(report) })
        running = conversation
        startedAt = MonotonicClock.milliseconds()
        conversation.run()
    }

    private func finished(_ report: CheckReport) {
        let reply = running?.reply
        running = nil
        guard !stopped, !runtime.isStopping else { return }
        if let reply { runtime.applyAgentReply(reply, to: server) }
        runtime.record(report, of: check, server: server)
        // Counted from the start of this check, so that slow answers and a busy loop do not
        // stretch the schedule.
        schedule(in: interval() - Int64(MonotonicClock.milliseconds() - startedAt))
    }

    /// HAProxy's `srv_getinter`, spread by `spread-checks`.
    private func interval() -> Int64 {
        let s = server.settings
        var ms: Int64
        if check.kind == .agent {
            ms = s.checks.agentInterMs ?? s.interMs
        } else {
            let health = check.snapshot.health
            if health.isSteadyUp {
                ms = s.interMs
            } else if health.isSteadyDown, server.operationalState == .stopped {
                ms = s.checks.downinterMs ?? s.interMs
            } else {
                ms = s.checks.fastinterMs ?? s.interMs
            }
        }
        let spread = runtime.configuration.global.spreadChecks
        if spread > 0 {
            let range = ms * Int64(spread) / 100
            if range > 0 { ms += Int64.random(in: -range...range) }
        }
        return max(1, ms)
    }

    /// Where a check connects: the step's or the server's check address, else the server's.
    /// Health checks speak TLS with `check-ssl`, or when the server has `ssl` and no check
    /// port of its own, as in HAProxy; `check-sni` names the server.
    func checkTLS(_ server: Server) -> (context: TLSClientContext, serverName: String?, session: TLSClientContext.SessionSlot?)? {
        guard let context = server.tls else { return nil }
        let settings = server.settings.tls
        guard settings.checkSSL || (settings.enabled && server.settings.checks.port == nil) else { return nil }
        return (context, settings.checkSNI, context.sessions.last)
    }

    static func destination(_ server: Server, address: String?, port: Int?, agent: Bool) -> SocketAddress? {
        let checks = server.settings.checks
        let host = address ?? (agent ? checks.agentAddress : checks.address)
        let wantedPort = port ?? (agent ? checks.agentPort : checks.port)
        if let host {
            var portNumber = wantedPort
            if portNumber == nil, case .inet(_, let p) = server.configuredAddress { portNumber = p }
            // Runs on an event loop: names were resolved when the server was built; anything
            // else must be a literal address.
            let known: SocketAddress?
            if host == checks.address { known = server.checkHost }
            else if host == checks.agentAddress { known = server.agentHost }
            else { known = try? SocketAddress(ipAddress: host, port: 0) }
            guard var resolved = known else { return nil }
            resolved.port = portNumber ?? 0
            return resolved
        }
        guard let current = server.socketAddress else { return nil }
        guard let wantedPort else { return current }
        var copy = current
        copy.port = wantedPort
        return copy
    }

    /// The steps of a server's check from its proxy's rules.
    static func plan(_ server: Server, _ checks: ProxyCheckSettings, agent: Bool) -> ([PlannedStep], CheckStyle) {
        if agent {
            var steps: [PlannedStep] = [.connect(address: nil, port: nil, sendProxy: false, implicit: true)]
            if let text = server.settings.checks.agentSend { steps.append(.send(Array(text.utf8))) }
            steps.append(.agentReply)
            return (steps, .agent)
        }
        let http = checks.kind == .http
        let written = http ? checks.httpSteps : checks.tcpSteps
        var implicitFirst = true
        if case .connect = written.first { implicitFirst = false }
        var first = true
        let steps = checks.steps.map { step -> PlannedStep in
            switch step {
            case .connect(let port, let address, let sendProxy):
                defer { first = false }
                // HAProxy's rule: `check-send-proxy`, or `send-proxy` on traffic when the check
                // goes to the same port and address.
                let implicitProxy = server.settings.checks.sendProxy
                    || (server.settings.sendProxy != nil && server.settings.checks.port == nil && server.settings.checks.address == nil)
                return .connect(address: address, port: port, sendProxy: sendProxy || (first && implicitProxy),
                                implicit: first && (implicitFirst || checks.kind == .connect))
            case .send(let bytes): return .send(bytes)
            case .httpSend(let request): return .send(request.bytes)
            case .expect(let e):
                var pattern: CheckPattern? = nil
                switch e.match {
                case .statusPattern(let p), .stringPattern(let p), .binaryPattern(let p): pattern = CheckPattern(p)
                default: break
                }
                return http ? .httpExpect(e, pattern, disableOn404: checks.disableOn404) : .expect(e, pattern)
            }
        }
        switch checks.kind {
        case .connect: return (steps, .connect)
        case .tcpCheck: return (steps, .tcpCheck)
        case .http: return (steps, .http)
        }
    }
}
