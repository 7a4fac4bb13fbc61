import NIOCore
import NIOPosix
import Shared
#if canImport(Glibc)
import Glibc
#endif

/// A step of a check, ready to run: patterns compiled, targets known.
enum PlannedStep {
    /// Connect to `address` (nil: the server's current address) on `port` (nil: the check port).
    /// `implicit`: added in front of rules that do not start with a connect.
    case connect(address: String?, port: Int?, sendProxy: Bool, implicit: Bool)
    case send([UInt8])
    case expect(CheckExpectation, CheckPattern?)
    case httpExpect(CheckExpectation, CheckPattern?, disableOn404: Bool)
    case agentReply
}

/// The kind of report a run that passes every step gives.
enum CheckStyle { case connect, tcpCheck, http, agent }

/// One run of a check: connects, sends, waits for what it expects, and reports once. Lives on
/// one event loop; every method runs there.
final class CheckConversation: @unchecked Sendable {
    private let loop: EventLoop
    private let steps: [PlannedStep]
    private let style: CheckStyle
    private let target: @Sendable (String?, Int?) -> SocketAddress?
    private let connectTimeoutMs: Int64
    private let readTimeoutMs: Int64
    private let bufferLimit: Int
    private let completion: (CheckReport) -> Void
    /// `check-ssl` (or `ssl` without a check port): the check speaks TLS, and a connect-only
    /// check passes at layer 6.
    private let tls: (context: TLSClientContext, serverName: String?, session: TLSClientContext.SessionSlot?)?

    private var channel: Channel?
    private var buffer: [UInt8] = []
    private var eof = false
    private var index = 0
    private var started = 0
    private var connected = false
    private var waiting = false
    private var finished = false
    private var timer: Scheduled<Void>?
    /// The last HTTP response's code and reason, for the success report.
    private var lastCode = 0
    private var lastReason = ""
    private var agentReply: AgentReply?
    private let proxyVersion: ProxyProtocolVersion
    /// `source`: the local address checks connect from (never a client's: `usesrc` is for
    /// traffic).
    private let source: SocketAddress?

    init(loop: EventLoop, steps: [PlannedStep], style: CheckStyle, connectTimeoutMs: Int64, readTimeoutMs: Int64,
         bufferLimit: Int, target: @escaping @Sendable (String?, Int?) -> SocketAddress?,
         tls: (context: TLSClientContext, serverName: String?, session: TLSClientContext.SessionSlot?)? = nil,
         proxyVersion: ProxyProtocolVersion = .v1, source: SocketAddress? = nil,
         completion: @escaping (CheckReport) -> Void) {
        self.tls = tls
        self.proxyVersion = proxyVersion
        self.source = source
        self.loop = loop
        self.steps = steps
        self.style = style
        self.connectTimeoutMs = connectTimeoutMs
        self.readTimeoutMs = readTimeoutMs
        self.bufferLimit = bufferLimit
        self.target = target
        self.completion = completion
    }

    /// The agent's parsed answer, once the run finished with one.
    var reply: AgentReply? { agentReply }

    func run() {
        started = MonotonicClock.milliseconds()
        advance()
    }

    private func advance() {
        while !finished, index < steps.count {
            switch steps[index] {
            case .connect(let address, let port, let sendProxy, _):
                connect(address: address, port: port, sendProxy: sendProxy)
                return
            case .send(let bytes):
                buffer.removeAll(keepingCapacity: true)
                guard let channel else { return finish(CheckReport(status: .socketError, description: "no connection")) }
                channel.writeAndFlush(ByteBuffer(bytes: bytes), promise: nil)
                index += 1
            case .expect, .httpExpect, .agentReply:
                waiting = true
                evaluate()
                return
            }
        }
        guard !finished else { return }
        switch style {
        case .connect: finish(CheckReport(status: tls == nil ? .l4ok : .l6ok))
        case .tcpCheck:
            // HAProxy reports "(tcp-check)" unless the only rule was its implicit connect.
            if case .connect(_, _, _, let implicit) = steps[steps.count - 1] {
                finish(CheckReport(status: .l4ok, description: implicit ? "" : "(tcp-check)"))
            } else {
                finish(CheckReport(status: .l7ok, code: 0, description: "(tcp-check)"))
            }
        case .http: finish(CheckReport(status: .l7ok, code: lastCode))
        case .agent: finish(CheckReport(status: .l7ok, code: 0))
        }
    }

    /// HAProxy's number of the current rule: the rules as written, from 1 (an implicit first
    /// connect is not one of them).
    private var stepNumber: Int {
        if case .connect(_, _, _, true) = steps.first { return index }
        return index + 1
    }

    /// Where a tcp-check sequence stopped, as HAProxy appends it to failures.
    private var tcpCheckPlace: String {
        guard style == .tcpCheck, index < steps.count else { return "" }
        switch steps[index] {
        case .connect(_, let port, _, let implicit):
            if implicit { return " at initial connection step of tcp-check" }
            return " at step \(stepNumber) of tcp-check" + (port.map { " (connect port \($0))" } ?? " (connect)")
        case .expect(let e, _):
            return " at step \(stepNumber) of tcp-check (\(CheckMatcher.expectName(e)))"
        case .send:
            return " at step \(stepNumber) of tcp-check (send)"
        default:
            return " at step \(stepNumber) of tcp-check"
        }
    }

    private func connect(address: String?, port: Int?, sendProxy: Bool) {
        if let old = channel {
            channel = nil
            old.close(promise: nil)
        }
        connected = false
        eof = false
        buffer.removeAll(keepingCapacity: true)
        guard let destination = target(address, port) else {
            return finish(CheckReport(status: .socketError, description: "no address" + tcpCheckPlace))
        }
        // The bootstrap's own connect timeout bounds the connect: no second timer.
        let handler = CheckInboundHandler(conversation: self)
        var bootstrap = ClientBootstrap(group: loop)
        if let source { bootstrap = bootstrap.channelOption(.socketOption(.so_reuseaddr), value: 1).bind(to: source) }
        bootstrap
            .connectTimeout(.milliseconds(connectTimeoutMs))
            // A connection that only proves the port is open never reads.
            .channelOption(.autoRead, value: awaitsInput || index + 1 < steps.count)
            .channelInitializer { channel in
                // Checks close with a reset: thousands of them a second must not fill TIME_WAIT.
                // On the channel's loop this applies at once.
                _ = (channel as? SocketOptionProvider)?.setSoLinger(linger(l_onoff: 1, l_linger: 0))
                return channel.eventLoop.makeCompletedFuture { try channel.pipeline.syncOperations.addHandler(handler) }
            }
            .connect(to: destination)
            .whenComplete { [self] result in
                switch result {
                case .success(let channel):
                    guard !finished else {
                        channel.close(promise: nil)
                        return
                    }
                    if let tls {
                        startTLS(tls, on: channel, sendProxy: sendProxy)
                        return
                    }
                    established(channel, sendProxy: sendProxy)
                case .failure(let error):
                    var report = Self.connectFailure(error)
                    report.description += tcpCheckPlace
                    finish(report)
                }
            }
    }

    /// The handshake comes after the PROXY header, if any; its failure is a layer 6 failure.
    private func startTLS(_ tls: (context: TLSClientContext, serverName: String?, session: TLSClientContext.SessionSlot?),
                          on channel: Channel, sendProxy: Bool) {
        if sendProxy { channel.writeAndFlush(ByteBuffer(bytes: proxyHeader(channel)), promise: nil) }
        let handler = TLSHandler(role: .client(tls.context, serverName: tls.serverName, session: tls.session),
                                 handshakeTimeout: .milliseconds(max(1, readTimeoutMs)))
        do {
            try channel.pipeline.syncOperations.addHandler(handler, position: .first)
        } catch {
            channel.close(promise: nil)
            return finish(CheckReport(status: .l6response, description: "SSL handshake failure"))
        }
        handler.handshakeFuture(on: loop).whenComplete { [self] result in
            guard !finished else {
                channel.close(promise: nil)
                return
            }
            switch result {
            case .success:
                established(channel, sendProxy: false)
            case .failure(let error):
                channel.close(promise: nil)
                let timedOut = (error as? TLSFailure) == .timeout
                finish(CheckReport(status: timedOut ? .l6timeout : .l6response, description: timedOut ? "" : "SSL handshake failure"))
            }
        }
    }

    private func established(_ channel: Channel, sendProxy: Bool) {
        self.channel = channel
        connected = true
        if sendProxy { channel.writeAndFlush(ByteBuffer(bytes: proxyHeader(channel)), promise: nil) }
        if awaitsInput { armTimer(readTimeoutMs) }
        index += 1
        advance()
    }

    static func connectFailure(_ error: Error) -> CheckReport {
        if case ChannelError.connectTimeout = error { return CheckReport(status: .l4timeout) }
        if let failure = error as? NIOConnectionError {
            for attempt in failure.connectionErrors {
                if let io = attempt.error as? IOError { return CheckReport(status: .l4connect, description: String(cString: strerror(io.errnoCode))) }
            }
            if failure.connectionErrors.isEmpty { return CheckReport(status: .socketError) }
        }
        if let io = error as? IOError { return CheckReport(status: .l4connect, description: String(cString: strerror(io.errnoCode))) }
        return CheckReport(status: .l4connect)
    }

    /// A check's PROXY header: the check connection's own addresses in version 1, the `LOCAL`
    /// command in version 2 (no client is behind a check).
    private func proxyHeader(_ channel: Channel) -> [UInt8] {
        ProxyHeader.encode(proxyVersion, source: channel.localAddress, destination: channel.remoteAddress, local: true)
    }

    /// Whether a step after the current one waits for the server (and so needs a read timer).
    private var awaitsInput: Bool {
        steps[(index + 1)...].contains { step in
            switch step {
            case .expect, .httpExpect, .agentReply: return true
            case .connect, .send: return false
            }
        }
    }

    private func armTimer(_ ms: Int64) {
        timer?.cancel()
        timer = loop.scheduleTask(in: .milliseconds(ms)) { [self] in timedOut() }
    }

    private func timedOut() {
        guard !finished else { return }
        guard connected else { return finish(CheckReport(status: .l4timeout, description: tcpCheckPlace)) }
        switch style {
        case .connect: finish(CheckReport(status: .l4timeout))
        case .tcpCheck: finish(CheckReport(status: .l7timeout, description: tcpCheckPlace))
        case .http, .agent: finish(CheckReport(status: .l7timeout))
        }
    }

    // MARK: - Input

    fileprivate func received(_ bytes: ByteBuffer) {
        guard !finished else { return }
        let room = bufferLimit - buffer.count
        if room > 0 { buffer.append(contentsOf: bytes.readableBytesView.prefix(room)) }
        if waiting { evaluate() }
    }

    fileprivate func closed() {
        eof = true
        // Otherwise the next expectation sees the end of input when it comes.
        if !finished, waiting { evaluate() }
    }

    private var complete: Bool { eof || buffer.count >= bufferLimit }

    private func evaluate() {
        guard !finished, index < steps.count else { return }
        let verdict: ExpectVerdict
        switch steps[index] {
        case .expect(let expectation, let pattern):
            verdict = CheckMatcher.tcp(expectation, pattern, buffer: buffer, complete: complete, step: stepNumber)
        case .httpExpect(let expectation, let pattern, let disableOn404):
            guard let response = HTTPCheckResponse(parsing: buffer, complete: complete) else {
                // HAProxy reports an unreadable or empty answer without a description.
                if complete { return finish(CheckReport(status: .l7response)) }
                return
            }
            lastCode = response.code
            lastReason = response.reason
            if disableOn404, response.code == 404 {
                return finish(CheckReport(status: .l7okConditional, code: 404))
            }
            verdict = CheckMatcher.http(expectation, pattern, response)
        case .agentReply:
            guard buffer.contains(UInt8(ascii: "\n")) || complete else { return }
            let text = String(decoding: buffer, as: UTF8.self)
            agentReply = AgentReply(parsing: text)
            guard let reply = agentReply else {
                return finish(CheckReport(status: .l7response, description: buffer.isEmpty ? "" : "unexpected agent reply"))
            }
            // HAProxy's wording: "via agent : down (maintenance window)".
            let note = reply.description.isEmpty ? "" : " (\(reply.description))"
            switch reply.health {
            case .down: return finish(CheckReport(status: .l7status, code: 0, description: "via agent : down" + note))
            case .stopped: return finish(CheckReport(status: .l7status, code: 0, description: "via agent : stopped" + note))
            case .fail: return finish(CheckReport(status: .l7status, code: 0, description: "via agent : fail" + note))
            case .up: return finish(CheckReport(status: .l7ok, code: 0, description: "via agent : up" + note))
            case nil: return finish(CheckReport(status: .checked))
            }
        default:
            return
        }
        switch verdict {
        case .waiting:
            return
        case .failed(let report):
            finish(report)
        case .satisfied:
            waiting = false
            index += 1
            advance()
        }
    }

    private func finish(_ report: CheckReport) {
        guard !finished else { return }
        finished = true
        timer?.cancel()
        timer = nil
        if let channel {
            self.channel = nil
            channel.close(promise: nil)
        }
        var report = report
        report.durationMs = MonotonicClock.milliseconds() - started
        completion(report)
    }
}

/// Passes a check connection's input to its conversation.
private final class CheckInboundHandler: ChannelInboundHandler, @unchecked Sendable {
    typealias InboundIn = ByteBuffer
    private let conversation: CheckConversation

    init(conversation: CheckConversation) { self.conversation = conversation }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        conversation.received(unwrapInboundIn(data))
    }

    func channelInactive(context: ChannelHandlerContext) {
        conversation.closed()
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        context.close(promise: nil)
    }
}
