import CHaspTLS
import NIOCore
import Shared

/// Why a TLS connection ended before or during its handshake, in HAProxy's log words
/// (`fc_err_str`).
enum TLSFailure: Error, Equatable {
    case handshake(String?)
    case closedDuringHandshake
    case timeout
    case clientCertificateNotTrusted
    case clientChainNotVerified

    var logMessage: String {
        switch self {
        case .handshake: "SSL handshake failure"
        case .closedDuringHandshake: "Connection closed during SSL handshake"
        case .timeout: "Timeout during SSL handshake"
        case .clientCertificateNotTrusted: "SSL client certificate not trusted"
        case .clientChainNotVerified: "SSL client CA chain cannot be verified"
        }
    }
}

/// Sent down the pipeline once the handshake succeeded.
struct TLSHandshakeCompleted {}

/// TLS over one connection, client or server side, with OpenSSL over two memory BIOs: it sits
/// first in the pipeline, turns ciphertext from the socket into plaintext for the session
/// above it, and the session's plaintext writes into ciphertext. The sessions above it (HTTP,
/// TCP, server connections) are the same as for plain connections: a received close_notify
/// reaches them as a half-close (`ChannelEvent.inputClosed`), their half-close sends
/// close_notify, writability is the socket's.
///
/// States: `handshaking` (writes wait; reads feed the handshake), `open`, `closed`. A failed
/// handshake sends the library's alert, reports the failure (for the error log) and closes.
final class TLSHandler: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer
    typealias OutboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    enum Role {
        case server(TLSServerContext)
        case client(TLSClientContext, serverName: String?, session: TLSClientContext.SessionSlot?)
    }

    enum State { case handshaking, open, closed }

    private(set) var state = State.handshaking
    private var connection: OpaquePointer?
    let role: Role
    /// What the handshake negotiated, for fetches and logs.
    let facts = TLSSessionFacts()
    private var pendingWrites: [(ByteBuffer, EventLoopPromise<Void>?)] = []
    private var pendingFlush = false
    private var inputEnded = false
    private var closeNotifyDelivered = false
    private var failed = false
    private var sessionRemembered = false
    private(set) var receivedBytes = 0
    private let handshakeTimeout: TimeAmount?
    private var timer: Scheduled<Void>?
    private var handshakePromise: EventLoopPromise<Void>?
    /// Called once if the handshake fails (the session logs it).
    var onFailure: ((TLSFailure) -> Void)?

    init(role: Role, handshakeTimeout: TimeAmount?) {
        self.role = role
        self.handshakeTimeout = handshakeTimeout
        switch role {
        case .server(let context):
            connection = hasp_conn_new(context.defaultContext, 1)
        case .client(let context, let serverName, let session):
            connection = hasp_conn_new(context.context, 0)
            if let connection {
                if let serverName, !serverName.isEmpty {
                    _ = hasp_conn_set_sni(connection, serverName)
                    facts.serverName = serverName
                }
                if let host = context.verifyHost(serverName: serverName) { _ = hasp_conn_set_verify_host(connection, host) }
                if !context.alpnWire.isEmpty {
                    context.alpnWire.withUnsafeBufferPointer { _ = hasp_conn_set_alpn(connection, $0.baseAddress, UInt32($0.count)) }
                }
                session?.resume(connection)
            }
        }
    }

    deinit {
        if let connection { hasp_conn_free(connection, 0) }
    }

    /// Completes when the handshake succeeded, fails when it did not.
    func handshakeFuture(on loop: EventLoop) -> EventLoopFuture<Void> {
        switch state {
        case .open:
            return loop.makeSucceededVoidFuture()
        case .closed:
            return loop.makeFailedFuture(TLSFailure.handshake(facts.errorText))
        case .handshaking:
            if let handshakePromise { return handshakePromise.futureResult }
            let promise = loop.makePromise(of: Void.self)
            handshakePromise = promise
            return promise.futureResult
        }
    }

    // MARK: - Lifecycle

    func handlerAdded(context: ChannelHandlerContext) {
        if connection == nil {
            fail(context, .handshake("cannot create the TLS connection"))
            return
        }
        if let handshakeTimeout {
            let bound = NIOLoopBound(self, eventLoop: context.eventLoop)
            timer = context.eventLoop.scheduleTask(in: handshakeTimeout) {
                let handler = bound.value
                guard handler.state == .handshaking, let context = handler.storedContext else { return }
                handler.fail(context, .timeout)
            }
        }
        storedContext = context
        if context.channel.isActive { start(context) }
    }

    private var storedContext: ChannelHandlerContext?

    func handlerRemoved(context: ChannelHandlerContext) {
        storedContext = nil
        timer?.cancel()
        timer = nil
        if let connection {
            // A clean end keeps the session resumable.
            hasp_conn_free(connection, state == .open || closeNotifyDelivered ? 1 : 0)
            self.connection = nil
        }
        state = .closed
        failPendingWrites()
        settleHandshake(.failure(TLSFailure.closedDuringHandshake))
    }

    /// Completes the handshake promise once; a later `handshakeFuture` answers from `state`.
    private func settleHandshake(_ result: Result<Void, Error>) {
        guard let promise = handshakePromise else { return }
        handshakePromise = nil
        promise.completeWith(result)
    }

    func channelActive(context: ChannelHandlerContext) {
        start(context)
        context.fireChannelActive()
    }

    private var started = false

    /// A client speaks first; a server waits for the ClientHello (reading even when the
    /// session above keeps `autoRead` off until later).
    private func start(_ context: ChannelHandlerContext) {
        guard !started, state == .handshaking else { return }
        started = true
        if case .client = role {
            advanceHandshake(context)
        } else {
            readIfManual(context)
        }
    }

    private func readIfManual(_ context: ChannelHandlerContext) {
        if let autoRead = try? context.channel.syncOptions?.getOption(.autoRead), !autoRead { context.read() }
    }

    func channelInactive(context: ChannelHandlerContext) {
        if state == .handshaking {
            fail(context, .closedDuringHandshake, closing: false)
        }
        state = .closed
        context.fireChannelInactive()
    }

    // MARK: - Inbound

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard let connection, state != .closed else { return }
        let bytes = unwrapInboundIn(data)
        receivedBytes += bytes.readableBytes
        bytes.withUnsafeReadableBytes { raw in
            _ = hasp_conn_feed(connection, raw.baseAddress, raw.count)
        }
        switch state {
        case .handshaking: advanceHandshake(context)
        case .open: readPlaintext(context)
        case .closed: break
        }
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        context.fireChannelReadComplete()
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        guard let event = event as? ChannelEvent, event == .inputClosed else {
            context.fireUserInboundEventTriggered(event)
            return
        }
        if let connection { hasp_conn_input_ended(connection) }
        switch state {
        case .handshaking:
            fail(context, .closedDuringHandshake)
        case .open:
            // A TCP close without close_notify still ends the input, as HAProxy accepts it.
            deliverInputEnd(context)
        case .closed:
            break
        }
    }

    /// The input ended (close_notify, or TCP EOF after the handshake): as a half-close when the
    /// channel allows one, else as the end of the connection, as NIO treats a plain EOF.
    private func deliverInputEnd(_ context: ChannelHandlerContext) {
        guard !inputEnded else { return }
        inputEnded = true
        let halfClosure = (try? context.channel.syncOptions?.getOption(.allowRemoteHalfClosure)) ?? false
        if halfClosure {
            context.fireUserInboundEventTriggered(ChannelEvent.inputClosed)
        } else {
            context.close(promise: nil)
        }
    }

    private func advanceHandshake(_ context: ChannelHandlerContext) {
        guard let connection else { return }
        switch hasp_conn_handshake(connection) {
        case HASP_IO_OK:
            state = .open
            timer?.cancel()
            timer = nil
            recordFacts(connection)
            flushCiphertext(context)
            settleHandshake(.success(()))
            context.fireUserInboundEventTriggered(TLSHandshakeCompleted())
            drainPendingWrites(context)
            // Application data may have come with the last handshake flight.
            readPlaintext(context)
        case HASP_IO_WANT_READ:
            flushCiphertext(context)
            readIfManual(context)
        default:
            fail(context, failureReason(connection))
        }
    }

    private func failureReason(_ connection: OpaquePointer) -> TLSFailure {
        let text = TLSLibrary.takeError()
        facts.errorCode = text.code
        facts.errorText = text.reason
        if case .server = role {
            if hasp_conn_crt_error(connection) != 0 { return .clientCertificateNotTrusted }
            if hasp_conn_ca_error(connection) != 0 { return .clientChainNotVerified }
        }
        return .handshake(text.full)
    }

    /// Decrypts everything fed so far and passes it up as one buffer.
    private func readPlaintext(_ context: ChannelHandlerContext) {
        guard let connection, !inputEnded else { return }
        var buffer = context.channel.allocator.buffer(capacity: 16_384)
        var outcome = Int32(HASP_IO_OK)
        while outcome == HASP_IO_OK {
            var got = 0
            buffer.writeWithUnsafeMutableBytes(minimumWritableBytes: 16_384) { raw in
                outcome = hasp_conn_read(connection, raw.baseAddress, raw.count, &got)
                return got
            }
        }
        if buffer.readableBytes > 0 {
            // TLS 1.3 sessions come after the handshake: remember one once data flows.
            if !sessionRemembered, case .client(_, _, let session?) = role {
                sessionRemembered = session.remember(connection)
            }
            context.fireChannelRead(wrapInboundOut(buffer))
        }
        switch outcome {
        case HASP_IO_WANT_READ:
            // Renegotiation refusals or session tickets may need sending.
            flushCiphertext(context)
        case HASP_IO_CLOSED:
            // The peer's close_notify: the input ends, the output stays open until the
            // session closes it.
            closeNotifyDelivered = true
            deliverInputEnd(context)
        default:
            let text = TLSLibrary.takeError()
            facts.errorCode = text.code
            facts.errorText = text.reason
            failed = true
            flushCiphertext(context)
            state = .closed
            context.fireErrorCaught(TLSFailure.handshake(text.full))
            context.close(promise: nil)
        }
    }

    // MARK: - Outbound

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        let bytes = unwrapOutboundIn(data)
        switch state {
        case .handshaking:
            pendingWrites.append((bytes, promise))
        case .open:
            encrypt(context, bytes, promise: promise)
        case .closed:
            promise?.fail(ChannelError.ioOnClosedChannel)
        }
    }

    func flush(context: ChannelHandlerContext) {
        if state == .handshaking {
            pendingFlush = true
            return
        }
        context.flush()
    }

    func read(context: ChannelHandlerContext) {
        context.read()
    }

    func close(context: ChannelHandlerContext, mode: CloseMode, promise: EventLoopPromise<Void>?) {
        switch mode {
        case .input:
            context.close(mode: mode, promise: promise)
        case .output, .all:
            if state == .open, let connection {
                hasp_conn_shutdown(connection)
                flushCiphertext(context)
            }
            if mode == .all {
                if state == .handshaking { settleHandshake(.failure(TLSFailure.closedDuringHandshake)) }
                state = .closed
                failPendingWrites()
            }
            context.close(mode: mode, promise: promise)
        }
    }

    private func encrypt(_ context: ChannelHandlerContext, _ bytes: ByteBuffer, promise: EventLoopPromise<Void>?) {
        guard let connection else {
            promise?.fail(ChannelError.ioOnClosedChannel)
            return
        }
        if bytes.readableBytes == 0 {
            // An empty write marks a point in the stream (the sessions wait on it).
            context.write(wrapOutboundOut(bytes), promise: promise)
            return
        }
        let outcome = bytes.withUnsafeReadableBytes { raw in hasp_conn_write(connection, raw.baseAddress, raw.count) }
        guard outcome == HASP_IO_OK else {
            promise?.fail(TLSFailure.handshake(TLSLibrary.takeError().full))
            return
        }
        writeCiphertext(context, promise: promise)
    }

    /// Moves the ciphertext OpenSSL produced to the socket (not flushed).
    private func writeCiphertext(_ context: ChannelHandlerContext, promise: EventLoopPromise<Void>? = nil) {
        guard let connection else {
            promise?.succeed(())
            return
        }
        let pending = hasp_conn_pending(connection)
        guard pending > 0 else {
            promise?.succeed(())
            return
        }
        var out = context.channel.allocator.buffer(capacity: pending)
        out.writeWithUnsafeMutableBytes(minimumWritableBytes: pending) { raw in
            hasp_conn_take(connection, raw.baseAddress, raw.count)
        }
        context.write(wrapOutboundOut(out), promise: promise)
    }

    private func flushCiphertext(_ context: ChannelHandlerContext) {
        guard let connection, hasp_conn_pending(connection) > 0 else { return }
        writeCiphertext(context)
        context.flush()
    }

    private func drainPendingWrites(_ context: ChannelHandlerContext) {
        let writes = pendingWrites
        pendingWrites = []
        for (bytes, promise) in writes { encrypt(context, bytes, promise: promise) }
        if pendingFlush || !writes.isEmpty {
            pendingFlush = false
            context.flush()
        }
    }

    private func failPendingWrites() {
        let writes = pendingWrites
        pendingWrites = []
        for (_, promise) in writes { promise?.fail(ChannelError.ioOnClosedChannel) }
    }

    // MARK: - Failure

    /// The session's own deadline passed during the handshake.
    func expire() {
        guard let context = storedContext else { return }
        fail(context, .timeout)
    }

    private func fail(_ context: ChannelHandlerContext, _ failure: TLSFailure, closing: Bool = true) {
        guard state == .handshaking, !failed else { return }
        failed = true
        state = .closed
        timer?.cancel()
        timer = nil
        if facts.errorText == nil, case .handshake(let text?) = failure { facts.errorText = text }
        // The alert OpenSSL prepared goes out before the close.
        flushCiphertext(context)
        failPendingWrites()
        settleHandshake(.failure(failure))
        onFailure?(failure)
        onFailure = nil
        if closing { context.close(promise: nil) }
    }

    // MARK: - Facts

    private func recordFacts(_ connection: OpaquePointer) {
        facts.handshakeDone = true
        facts.protocolName = TLSLibrary.string(hasp_conn_version(connection))
        facts.cipher = TLSLibrary.string(hasp_conn_cipher(connection))
        facts.cipherBits = Int(hasp_conn_cipher_bits(connection))
        facts.resumed = hasp_conn_resumed(connection) != 0
        var alpn = [CChar](repeating: 0, count: 256)
        if hasp_conn_alpn(connection, &alpn, alpn.count) > 0 { facts.alpn = TLSLibrary.string(alpn) }
        facts.verifyResult = Int(hasp_conn_verify_result(connection))
        facts.certificateError = Int(hasp_conn_crt_error(connection))
        facts.chainError = Int(hasp_conn_ca_error(connection))
        facts.chainErrorDepth = Int(hasp_conn_ca_error_depth(connection))
        if let peer = hasp_conn_peer_cert(connection) {
            facts.peerCertificate = TLSLibrary.certificateFacts(peer)
            X509_free(peer)
        }
        switch role {
        case .server(let context):
            facts.serverName = TLSLibrary.string(hasp_conn_servername(connection))
            facts.ownCertificate = context.facts(for: SSL_get_SSL_CTX(hasp_conn_ssl(connection)))
        case .client(_, _, let session):
            sessionRemembered = session?.remember(connection) ?? true
        }
    }
}
