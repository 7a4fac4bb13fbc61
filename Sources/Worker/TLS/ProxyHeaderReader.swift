import NIOCore

/// Sent up the pipeline when a PROXY header announced the client (`bind ... accept-proxy ssl`).
struct ProxyHeaderReceived {
    let source: SocketAddress?
    let destination: SocketAddress?
}

/// `accept-proxy` on a TLS bind: the PROXY header comes in clear before the ClientHello, so it
/// is read here, below the TLS handler. Once complete it announces the client to the session
/// (`ProxyHeaderReceived`), passes on what followed it and leaves the pipeline. An invalid
/// header closes the connection, as HAProxy does.
final class ProxyHeaderReader: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer

    private var buffered: ByteBuffer?

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        var bytes = unwrapInboundIn(data)
        if buffered == nil { buffered = bytes } else { buffered!.writeBuffer(&bytes) }
        switch ProxyProtocolHeader.parse(buffered!) {
        case .incomplete:
            if let autoRead = try? context.channel.syncOptions?.getOption(.autoRead), !autoRead { context.read() }
        case .invalid:
            buffered = nil
            context.close(promise: nil)
        case .complete(let source, let destination, let length):
            var rest = buffered!
            buffered = nil
            rest.moveReaderIndex(forwardBy: length)
            context.fireUserInboundEventTriggered(ProxyHeaderReceived(source: source, destination: destination))
            if rest.readableBytes > 0 { context.fireChannelRead(wrapInboundOut(rest)) }
            context.pipeline.syncOperations.removeHandler(context: context, promise: nil)
        }
    }
}
