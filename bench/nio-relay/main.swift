// The least a proxy built on SwiftNIO's channels does per connection, to measure where NIO
// itself puts the floor (issue 16): accept, connect to the backend on the same event loop, relay
// bytes both ways with back-pressure, close each side when the other closes. No parsing, no
// rules, no timers, no logging, no statistics.
//
// It stands in for a proxy binary in bench/run.sh and bench/instructions.sh: it takes (and
// ignores) `-db -f <file>`, and reads the ports from the environment those scripts export:
// PROXY_HTTP_PORT and PROXY_TCP_PORT are relayed to NGINX_PORT, NBTHREAD threads (default 1).
import NIOCore
import NIOPosix

#if canImport(Glibc)
import Glibc
#endif

/// One side of a relayed pair. What it reads is written on its partner's channel; it reads
/// only while the partner's channel takes writes, and closes when the partner closed. Both sides
/// of a pair live on the accepted connection's event loop, which is the only one touching them.
final class RelaySide: ChannelDuplexHandler, @unchecked Sendable {
    typealias InboundIn = ByteBuffer
    typealias OutboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    private var context: ChannelHandlerContext?
    private var partner: RelaySide?
    /// A read was asked before the partner existed or while it could not take writes.
    private var readWanted = false
    private var partnerClosed = false

    func pair(with other: RelaySide) {
        partner = other
        if readWanted, let context, context.channel.isWritable {
            readWanted = false
            context.read()
        }
    }

    func handlerAdded(context: ChannelHandlerContext) { self.context = context }

    func handlerRemoved(context: ChannelHandlerContext) {
        self.context = nil
        partner = nil
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        partner?.send(unwrapInboundIn(data))
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        partner?.context?.flush()
    }

    func channelInactive(context: ChannelHandlerContext) {
        partner?.otherSideClosed()
        partner = nil
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        if context.channel.isWritable { partner?.resumeReading() }
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        context.close(promise: nil)
    }

    func read(context: ChannelHandlerContext) {
        if let partner, partner.context?.channel.isWritable ?? false {
            context.read()
        } else {
            readWanted = true
        }
    }

    private func send(_ buffer: ByteBuffer) {
        context?.write(wrapOutboundOut(buffer), promise: nil)
    }

    private func resumeReading() {
        guard readWanted, let context else { return }
        readWanted = false
        context.read()
    }

    /// What was relayed goes out first, then this side closes.
    private func otherSideClosed() {
        guard !partnerClosed, let context else { return }
        partnerClosed = true
        partner = nil
        let channel = context.channel
        let done = context.eventLoop.makePromise(of: Void.self)
        context.writeAndFlush(wrapOutboundOut(channel.allocator.buffer(capacity: 0)), promise: done)
        done.futureResult.whenComplete { _ in channel.close(promise: nil) }
    }
}

func port(_ name: String, _ fallback: Int) -> Int {
    getenv(name).flatMap { Int(String(cString: $0)) } ?? fallback
}

let threads = port("NBTHREAD", 1)
let backend = try SocketAddress(ipAddress: "127.0.0.1", port: port("NGINX_PORT", 18001))
let group = MultiThreadedEventLoopGroup(numberOfThreads: threads)

let server = ServerBootstrap(group: group)
    .serverChannelOption(.backlog, value: 4096)
    // Accepts in batches, as hasp's listeners do.
    .serverChannelOption(.maxMessagesPerRead, value: 32)
    .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
    // (TCP_NODELAY: NIO sets it on the listener, and Linux gives accepted sockets the listener's.)
    .childChannelInitializer { client in
        let clientSide = RelaySide()
        let serverSide = RelaySide()
        do {
            try client.pipeline.syncOperations.addHandler(clientSide)
        } catch {
            return client.eventLoop.makeFailedFuture(error)
        }
        // No bootstrap options (NIO applies them through futures, ~20,000 instructions per
        // connection): enabling then disabling MPTCP drops the default TCP_NODELAY, set below
        // on the channel itself.
        ClientBootstrap(group: client.eventLoop)
            .enableMPTCP(true).enableMPTCP(false)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.syncOptions!.setOption(.tcpOption(.tcp_nodelay), value: 1)
                    try channel.pipeline.syncOperations.addHandler(serverSide)
                }
            }
            .connect(to: backend)
            .whenComplete { result in
                switch result {
                case .success:
                    serverSide.pair(with: clientSide)
                    clientSide.pair(with: serverSide)
                case .failure:
                    client.close(promise: nil)
                }
            }
        return client.eventLoop.makeSucceededVoidFuture()
    }

var channels: [Channel] = []
for name in ["PROXY_HTTP_PORT", "PROXY_TCP_PORT"] {
    channels.append(try server.bind(host: "127.0.0.1", port: port(name, name == "PROXY_HTTP_PORT" ? 18002 : 18003)).wait())
}
try channels[0].closeFuture.wait()
