import NIOCore
import Shared

/// Receives what a server connection produces while a session owns it.
protocol ServerConnectionDelegate: AnyObject {
    func server(_ connection: ServerConnection, received bytes: ByteBuffer)
    func serverReadComplete(_ connection: ServerConnection)
    func serverWritabilityChanged(_ connection: ServerConnection)
    func serverClosed(_ connection: ServerConnection)
    func server(_ connection: ServerConnection, failed error: Error)
}

/// One HTTP/1 connection to a server. Lives on one event loop; owned either by a session
/// (`delegate` set) or by that loop's idle pool (`delegate` nil).
final class ServerConnection {
    let channel: Channel
    let server: Server
    let pool: ServerConnectionPool
    var delegate: ServerConnectionDelegate?
    var requestCount = 0
    var isClosed = false
    /// Whether it sits in the pool (so that a close removes it from there).
    var isPooled = false
    /// What its TLS negotiated (`server ... ssl`; nil for a plain connection), and the server
    /// name it was opened for: a connection is reused only for the same name.
    let tls: TLSSessionFacts?

    init(channel: Channel, server: Server, pool: ServerConnectionPool) {
        self.channel = channel
        self.server = server
        self.pool = pool
        tls = (try? channel.pipeline.syncOperations.handler(type: TLSHandler.self))?.facts
    }

    /// The SNI this connection sent.
    var serverName: String? { tls?.serverName }

    func close() {
        guard !isClosed else { return }
        channel.close(promise: nil)
    }

    /// Parks the connection: any byte or close from the server now means it cannot be reused.
    func park() {
        delegate = nil
        setReading(true)
    }

    private var reading = true

    /// Switches reading on or off (back-pressure); only a change costs a system call.
    func setReading(_ on: Bool) {
        guard on != reading, !isClosed else { return }
        reading = on
        _ = try? channel.syncOptions?.setOption(.autoRead, value: on)
    }

    fileprivate func handleUnexpectedWhileIdle() {
        if isPooled {
            pool.remove(self, server: server)
            isPooled = false
        }
        close()
    }

    /// The channel closed (seen as channelInactive, or as its close future when it closed
    /// before becoming fully active).
    func closed() { didClose() }

    fileprivate func didClose() {
        guard !isClosed else { return }
        isClosed = true
        if isPooled {
            pool.remove(self, server: server)
            isPooled = false
        }
        delegate?.serverClosed(self)
    }
}

/// Last handler of a server connection's pipeline: relays events to the owner.
final class ServerConnectionHandler: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer

    var connection: ServerConnection?

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard let connection else { return }
        let bytes = unwrapInboundIn(data)
        if let delegate = connection.delegate {
            delegate.server(connection, received: bytes)
        } else {
            connection.handleUnexpectedWhileIdle()
        }
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        guard let connection, let delegate = connection.delegate else { return }
        delegate.serverReadComplete(connection)
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        guard let connection, let delegate = connection.delegate else { return }
        delegate.serverWritabilityChanged(connection)
    }

    func channelInactive(context: ChannelHandlerContext) {
        connection?.didClose()
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        guard let connection else {
            context.close(promise: nil)
            return
        }
        if let delegate = connection.delegate {
            delegate.server(connection, failed: error)
        } else {
            connection.handleUnexpectedWhileIdle()
        }
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if let event = event as? ChannelEvent, event == .inputClosed {
            // The server half-closed: for HTTP/1 this ends the connection.
            if let connection, connection.delegate == nil { connection.handleUnexpectedWhileIdle() }
        }
        context.fireUserInboundEventTriggered(event)
    }
}
