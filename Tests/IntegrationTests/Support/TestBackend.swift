import Atomics
import Foundation
import NIOCore
import NIOHTTP1
import NIOPosix

/// A real HTTP/1.1 server for the tests, on its own event loop group.
///
/// Routes: `/hello` (200, body = name), `/conn` (the connection's number), `/peer` (its address), `/sum` (reads the
/// body, answers `len=<n> fnv=<hex>`), `/bytes/<n>` and `/chunked/<n>` (stream the pattern),
/// `/slow/<ms>`, `/hold` (never answers), `/status/<code>`, `/echo/...` (the request line and headers).
final class TestBackend: @unchecked Sendable {
    let name: String
    let group: MultiThreadedEventLoopGroup
    let channel: Channel
    let port: Int
    let acceptedConnections = ManagedAtomic<Int>(0)
    let requests = ManagedAtomic<Int>(0)
    let concurrent = ManagedAtomic<Int>(0)
    let maxConcurrent = ManagedAtomic<Int>(0)

    init(name: String = "b1", threads: Int = 1) throws {
        self.name = name
        group = MultiThreadedEventLoopGroup(numberOfThreads: threads)
        let box = Box()
        let bootstrap = ServerBootstrap(group: group)
            .serverChannelOption(.backlog, value: 512)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { channel in
                let backend = box.backend!
                let number = backend.acceptedConnections.wrappingIncrementThenLoad(ordering: .relaxed)
                do {
                    try channel.pipeline.syncOperations.configureHTTPServerPipeline(withPipeliningAssistance: true)
                    try channel.pipeline.syncOperations.addHandler(BackendHandler(backend: backend, connectionNumber: number))
                    return channel.eventLoop.makeSucceededVoidFuture()
                } catch {
                    return channel.eventLoop.makeFailedFuture(error)
                }
            }
        channel = try bootstrap.bind(host: "127.0.0.1", port: 0).wait()
        port = channel.localAddress!.port!
        box.backend = self
    }

    final class Box: @unchecked Sendable { var backend: TestBackend? }

    func stop() {
        try? channel.close().wait()
        try? group.syncShutdownGracefully()
    }

    deinit { try? group.syncShutdownGracefully() }
}

private final class BackendHandler: ChannelInboundHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    let backend: TestBackend
    let connectionNumber: Int
    var head: HTTPRequestHead?
    var sum = FNV1a()
    var length = 0
    var streamRemaining = 0
    var streamOffset = 0
    var streamChunked = false
    var streaming = false

    init(backend: TestBackend, connectionNumber: Int) {
        self.backend = backend
        self.connectionNumber = connectionNumber
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let h):
            head = h
            sum = FNV1a()
            length = 0
            backend.requests.wrappingIncrement(ordering: .relaxed)
            let now = backend.concurrent.wrappingIncrementThenLoad(ordering: .relaxed)
            var max = backend.maxConcurrent.load(ordering: .relaxed)
            while now > max, !backend.maxConcurrent.compareExchange(expected: max, desired: now, ordering: .relaxed).exchanged {
                max = backend.maxConcurrent.load(ordering: .relaxed)
            }
        case .body(var buffer):
            length += buffer.readableBytes
            if let bytes = buffer.readBytes(length: buffer.readableBytes) { sum.add(bytes) }
        case .end:
            respond(context)
        }
    }

    private func respond(_ context: ChannelHandlerContext) {
        guard let head else { return }
        let parts = head.uri.split(separator: "?")[0].split(separator: "/").map(String.init)
        let route = parts.first ?? ""
        let argument = parts.count > 1 ? parts[1] : ""
        switch route {
        case "hello":
            send(context, .ok, body: backend.name)
        case "conn":
            send(context, .ok, body: "\(connectionNumber)")
        case "peer":
            // The address the connection came from (for `source` and `usesrc`).
            send(context, .ok, body: context.channel.remoteAddress?.ipAddress ?? "-")
        case "sum":
            send(context, .ok, body: "len=\(length) fnv=\(sum.hex)")
        case "echo":
            send(context, .ok, body: "\(head.method.rawValue) \(head.uri)\n" + head.headers.map { "\($0.name.lowercased()): \($0.value)" }.joined(separator: "\n"))
        case "headers":
            send(context, .ok, body: head.headers.map { "\($0.name.lowercased()): \($0.value)" }.joined(separator: "\n"))
        case "status":
            send(context, HTTPResponseStatus(statusCode: Int(argument) ?? 500), body: "status")
        case "slow":
            let ms = Int64(argument) ?? 100
            let loopBound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
            context.eventLoop.scheduleTask(in: .milliseconds(ms)) {
                let (handler, ctx) = loopBound.value
                handler.send(ctx, .ok, body: "slept \(ms)")
            }
        case "hold":
            break
        case "bytes", "chunked":
            streamRemaining = Int(argument) ?? 0
            streamOffset = 0
            streamChunked = route == "chunked"
            var headers = HTTPHeaders()
            if streamChunked { headers.add(name: "transfer-encoding", value: "chunked") }
            else { headers.add(name: "content-length", value: "\(streamRemaining)") }
            context.write(wrapOutboundOut(.head(HTTPResponseHead(version: .http1_1, status: .ok, headers: headers))), promise: nil)
            streaming = true
            pump(context)
        default:
            send(context, .notFound, body: "no route")
        }
    }

    private func pump(_ context: ChannelHandlerContext) {
        while streaming, context.channel.isWritable, streamRemaining > 0 {
            let n = min(65536, streamRemaining)
            var buffer = context.channel.allocator.buffer(capacity: n)
            buffer.writeBytes(Pattern.chunk(from: streamOffset, count: n))
            streamOffset += n
            streamRemaining -= n
            context.write(wrapOutboundOut(.body(.byteBuffer(buffer))), promise: nil)
        }
        context.flush()
        if streaming, streamRemaining == 0 {
            streaming = false
            backend.concurrent.wrappingDecrement(ordering: .relaxed)
            context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: nil)
        }
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        if context.channel.isWritable { pump(context) }
    }

    fileprivate func send(_ context: ChannelHandlerContext, _ status: HTTPResponseStatus, body: String) {
        backend.concurrent.wrappingDecrement(ordering: .relaxed)
        var headers = HTTPHeaders()
        headers.add(name: "content-length", value: "\(body.utf8.count)")
        headers.add(name: "x-backend", value: backend.name)
        context.write(wrapOutboundOut(.head(HTTPResponseHead(version: .http1_1, status: status, headers: headers))), promise: nil)
        var buffer = context.channel.allocator.buffer(capacity: body.utf8.count)
        buffer.writeString(body)
        context.write(wrapOutboundOut(.body(.byteBuffer(buffer))), promise: nil)
        context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: nil)
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        context.close(promise: nil)
    }
}

/// A raw TCP server: each connection runs `serve` on its own thread with a blocking socket.
final class RawServer: @unchecked Sendable {
    let fd: Int32
    let port: Int
    private var running = true
    let accepted = ManagedAtomic<Int>(0)

    init(serve: @escaping @Sendable (Int32) -> Void) throws {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        self.fd = fd
        var one: Int32 = 1
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        let rc = withUnsafePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
        guard rc == 0, listen(fd, 64) == 0 else { throw HarnessError("raw server bind failed") }
        var len = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &len) } }
        port = Int(UInt16(bigEndian: addr.sin_port))
        let listener = fd
        let counter = accepted
        Thread.detachNewThread {
            while true {
                let client = accept(listener, nil, nil)
                if client < 0 { return }
                counter.wrappingIncrement(ordering: .relaxed)
                Thread.detachNewThread { serve(client); close(client) }
            }
        }
    }

    /// Ends the accepting thread; the socket is closed once, at deinit (a second close could
    /// close a descriptor number another thread has been given since).
    func stop() { shutdown(fd, Int32(SHUT_RDWR)) }
    deinit { stop(); close(fd) }
}
