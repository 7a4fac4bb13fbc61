import Foundation
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix

/// A server for health-check tests whose answers the test changes while it runs, that can stop
/// listening and come back on the same port, and that records when each connection arrived.
final class CheckTarget: @unchecked Sendable {
    enum Behaviour: Sendable {
        /// Reads an HTTP request, answers `status` with `body` and closes.
        case http(Int, String)
        /// Writes `text` as soon as the connection opens (agents, banners), then closes.
        case text(String)
        /// Accepts and never answers.
        case silent
    }

    private(set) var port = 0
    private let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
    private let state = NIOLockedValueBox<(default: Behaviour, routes: [String: Behaviour], arrivals: [Int], paths: [String])>((.http(200, "ok"), [:], [], []))
    private let listener = NIOLockedValueBox<Channel?>(nil)

    init(_ behaviour: Behaviour = .http(200, "ok"), routes: [String: Behaviour] = [:]) throws {
        state.withLockedValue { $0.default = behaviour; $0.routes = routes }
        let channel = try Self.bind(self, group: group, port: 0)
        port = channel.localAddress!.port!
        listener.withLockedValue { $0 = channel }
    }

    private static func bind(_ target: CheckTarget, group: EventLoopGroup, port: Int) throws -> Channel {
        try ServerBootstrap(group: group)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .serverChannelOption(.backlog, value: 256)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(CheckTargetHandler(target: target))
                }
            }
            .bind(host: "127.0.0.1", port: port).wait()
    }

    func set(_ behaviour: Behaviour) { state.withLockedValue { $0.default = behaviour } }
    func set(_ path: String, _ behaviour: Behaviour) { state.withLockedValue { $0.routes[path] = behaviour } }

    func behaviour(for path: String?) -> Behaviour {
        state.withLockedValue { st in path.flatMap { st.routes[$0] } ?? st.default }
    }

    fileprivate func noteArrival() {
        let now = Int(DispatchTime.now().uptimeNanoseconds / 1_000_000)
        state.withLockedValue { $0.arrivals.append(now) }
    }

    fileprivate func notePath(_ path: String) { state.withLockedValue { $0.paths.append(path) } }

    private let firstLineBox = NIOLockedValueBox<[String]>([])
    fileprivate func noteFirstLine(_ line: String) { firstLineBox.withLockedValue { $0.append(line) } }
    /// The first line each connection sent.
    var firstLines: [String] { firstLineBox.withLockedValue { $0 } }

    /// Monotonic milliseconds at which connections arrived.
    var arrivals: [Int] { state.withLockedValue { $0.arrivals } }
    /// Request paths seen, in order.
    var paths: [String] { state.withLockedValue { $0.paths } }

    /// Closes the listening socket: connections are refused until `resume()`.
    func pause() {
        let channel = listener.withLockedValue { c -> Channel? in defer { c = nil }; return c }
        try? channel?.close().wait()
    }

    func resume() throws {
        let channel = try Self.bind(self, group: group, port: port)
        listener.withLockedValue { $0 = channel }
    }

    func stop() {
        pause()
        try? group.syncShutdownGracefully()
    }
}

private final class CheckTargetHandler: ChannelInboundHandler, @unchecked Sendable {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer
    private let target: CheckTarget
    private var received: [UInt8] = []
    private var answered = false

    init(target: CheckTarget) { self.target = target }

    func channelActive(context: ChannelHandlerContext) {
        target.noteArrival()
        if case .text(let text) = target.behaviour(for: nil) {
            answered = true
            context.writeAndFlush(wrapOutboundOut(ByteBuffer(string: text))).whenComplete { [channel = context.channel] _ in channel.close(promise: nil) }
        }
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard !answered else { return }
        let wasEmpty = received.isEmpty
        received.append(contentsOf: unwrapInboundIn(data).readableBytesView)
        let text = String(decoding: received, as: UTF8.self)
        if wasEmpty, let end = text.range(of: "\r\n") { target.noteFirstLine(String(text[..<end.lowerBound])) }
        guard let end = text.range(of: "\r\n\r\n") else { return }
        let path = text[..<end.lowerBound].split(separator: " ").dropFirst().first.map(String.init) ?? "/"
        target.notePath(path)
        answered = true
        switch target.behaviour(for: path) {
        case .http(let status, let body):
            let reason = [200: "OK", 404: "Not Found", 500: "Internal Server Error", 503: "Service Unavailable"][status] ?? "Status"
            let response = "HTTP/1.1 \(status) \(reason)\r\nContent-Length: \(body.utf8.count)\r\nConnection: close\r\n\r\n\(body)"
            context.writeAndFlush(wrapOutboundOut(ByteBuffer(string: response))).whenComplete { [channel = context.channel] _ in channel.close(promise: nil) }
        case .text(let text):
            context.writeAndFlush(wrapOutboundOut(ByteBuffer(string: text))).whenComplete { [channel = context.channel] _ in channel.close(promise: nil) }
        case .silent:
            break
        }
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) { context.close(promise: nil) }
}
