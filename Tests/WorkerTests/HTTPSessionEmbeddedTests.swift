import Foundation
import NIOCore
import NIOEmbedded
import Shared
import Testing
@testable import Worker

/// A clock the test moves by hand, together with the embedded loop's own time.
final class ManualClock: ExchangeClock, @unchecked Sendable {
    var ms: ExchangeTime = 1_000
    func now() -> ExchangeTime { ms }
}

/// Hands out embedded channels as server connections, or refuses them.
final class EmbeddedConnector: ServerConnector, @unchecked Sendable {
    var servers: [EmbeddedChannel] = []
    var refuse = false
    var attempts = 0
    var ports: [Int] = []

    func connect(to address: SocketAddress, from source: SourceBinding?, for backend: Backend, kind: ServerDialer.Kind, loop: EventLoop) -> EventLoopFuture<Channel> {
        attempts += 1
        ports.append(address.port ?? 0)
        if refuse { return loop.makeFailedFuture(ChannelError.connectTimeout(.seconds(1))) }
        let channel = EmbeddedChannel(loop: loop as! EmbeddedEventLoop)
        try! channel.pipeline.syncOperations.addHandler(ServerConnectionHandler(), name: "hasp.server")
        try! channel.connect(to: address).wait()
        servers.append(channel)
        return loop.makeSucceededFuture(channel)
    }
}

/// One worker runtime on an embedded loop; client connections are `HTTPSession`s in embedded
/// channels, server connections come from `EmbeddedConnector`. Nothing here touches a socket
/// or sleeps: time moves when the test says so.
final class EmbeddedProxy {
    let loop = EmbeddedEventLoop()
    let clock = ManualClock()
    let connector = EmbeddedConnector()
    let runtime: WorkerRuntime

    init(_ config: String) throws {
        let result = ConfigParser.parse([ConfigParser.Source(name: "t.cfg", text: config)])
        #expect(!result.hasErrors, "\(result.diagnostics.map(\.text))")
        runtime = WorkerRuntime(configuration: result.configuration, threads: 1, connector: connector, clock: clock)
    }

    deinit { try? runtime.group.syncShutdownGracefully() }

    /// A connected client on frontend `name` (the first one by default).
    func client(frontend name: String? = nil, acceptProxy: Bool = false) throws -> EmbeddedChannel {
        let frontend = try #require(name.map { n in runtime.frontends.first { $0.name == n } } ?? runtime.frontends.first)
        let channel = EmbeddedChannel(handler: HTTPSession(runtime: runtime, frontend: frontend, acceptProxy: acceptProxy), loop: loop)
        channel.localAddress = try SocketAddress(ipAddress: "127.0.0.1", port: 8080)
        try channel.connect(to: SocketAddress(ipAddress: "127.0.0.2", port: 40_000)).wait()
        return channel
    }

    func advance(ms: Int64) {
        clock.ms += ms
        loop.advanceTime(by: .milliseconds(ms))
    }

    var server: EmbeddedChannel { connector.servers.last! }
}

extension EmbeddedChannel {
    func send(_ text: String) throws {
        try writeInbound(ByteBuffer(string: text))
        pipeline.fireChannelReadComplete()
    }

    /// Everything written to this channel so far, as text.
    func written() throws -> String {
        var text = ""
        while let buffer = try readOutbound(as: ByteBuffer.self) { text += String(buffer: buffer) }
        return text
    }
}

@Suite struct HTTPSessionEmbeddedTests {
    static let config = """
    defaults
        mode http
        timeout connect 4s
        timeout client 30s
        timeout server 10s
        timeout http-request 5s
        timeout http-keep-alive 2s
    frontend fe
        bind 127.0.0.1:8080
        default_backend be
    backend be
        server s1 127.0.0.1:9000
    """

    static let ok = "HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok"

    @Test func aRequestIsForwardedAndTheConnectionReusedForTheNext() throws {
        let proxy = try EmbeddedProxy(Self.config)
        let client = try proxy.client()
        try client.send("GET /a HTTP/1.1\r\nhost: x\r\nconnection: keep-alive\r\n\r\n")
        let forwarded = try proxy.server.written()
        #expect(forwarded.hasPrefix("GET /a HTTP/1.1\r\nhost: x\r\n"))
        // Hop-by-hop headers are the proxy's own business.
        #expect(!forwarded.lowercased().contains("keep-alive"))
        try proxy.server.send(Self.ok)
        #expect(try client.written() == Self.ok)
        try client.send("GET /b HTTP/1.1\r\nhost: x\r\n\r\n")
        #expect(proxy.connector.servers.count == 1)
        #expect(try proxy.server.written().hasPrefix("GET /b "))
        try proxy.server.send(Self.ok)
        #expect(try client.written() == Self.ok)
        #expect(client.isActive)
    }

    @Test func pipelinedRequestsWaitForTheResponseBeforeThem() throws {
        let proxy = try EmbeddedProxy(Self.config)
        let client = try proxy.client()
        try client.send("GET /1 HTTP/1.1\r\nhost: x\r\n\r\nGET /2 HTTP/1.1\r\nhost: x\r\n\r\n")
        let first = try proxy.server.written()
        #expect(first.hasPrefix("GET /1 ") && !first.contains("GET /2"))
        try proxy.server.send(Self.ok)
        #expect(try proxy.server.written().hasPrefix("GET /2 "))
        try proxy.server.send(Self.ok)
        #expect(try client.written() == Self.ok + Self.ok)
    }

    @Test func anIncompleteHeadGets408AfterHTTPRequestTimeout() throws {
        let proxy = try EmbeddedProxy(Self.config)
        let client = try proxy.client()
        try client.send("GET / HTTP/1.1\r\nhost:")
        proxy.advance(ms: 4_999)
        #expect(try client.written().isEmpty)
        proxy.advance(ms: 1)
        #expect(try client.written().hasPrefix("HTTP/1.1 408 Request Time-out\r\n"))
        #expect(proxy.connector.attempts == 0)
    }

    @Test func anIdleKeepAliveConnectionClosesSilentlyAfterHTTPKeepAlive() throws {
        let proxy = try EmbeddedProxy(Self.config)
        let client = try proxy.client()
        try client.send("GET / HTTP/1.1\r\nhost: x\r\n\r\n")
        _ = try proxy.server.written()
        try proxy.server.send(Self.ok)
        _ = try client.written()
        proxy.advance(ms: 1_999)
        #expect(client.isActive)
        proxy.advance(ms: 1)
        #expect(!client.isActive)
        #expect(try client.written().isEmpty)
    }

    @Test func aSilentServerGets504AfterTimeoutServer() throws {
        let proxy = try EmbeddedProxy(Self.config)
        let client = try proxy.client()
        try client.send("GET / HTTP/1.1\r\nhost: x\r\n\r\n")
        proxy.advance(ms: 9_000)
        #expect(try client.written().isEmpty)
        // Half a response head is not silence.
        try proxy.server.send("HTTP/1.1 200 OK\r\n")
        proxy.advance(ms: 9_999)
        #expect(try client.written().isEmpty)
        proxy.advance(ms: 1)
        #expect(try client.written().hasPrefix("HTTP/1.1 504 Gateway Time-out\r\n"))
        #expect(!proxy.server.isActive)
    }

    @Test func aQueuedRequestGets503AfterTimeoutQueue() throws {
        let proxy = try EmbeddedProxy(Self.config.replacingOccurrences(of: "server s1 127.0.0.1:9000", with: "timeout queue 3s\n    server s1 127.0.0.1:9000 maxconn 1"))
        let first = try proxy.client()
        try first.send("GET / HTTP/1.1\r\nhost: x\r\n\r\n")
        let second = try proxy.client()
        try second.send("GET / HTTP/1.1\r\nhost: x\r\n\r\n")
        #expect(proxy.connector.servers.count == 1)
        proxy.advance(ms: 3_000)
        #expect(try second.written().hasPrefix("HTTP/1.1 503 Service Unavailable\r\n"))
        // The first one still has its slot and its answer.
        try proxy.server.send(Self.ok)
        #expect(try first.written() == Self.ok)
    }

    @Test func aQueuedRequestGetsTheSlotTheFirstReleases() throws {
        let proxy = try EmbeddedProxy(Self.config.replacingOccurrences(of: "server s1 127.0.0.1:9000", with: "server s1 127.0.0.1:9000 maxconn 1"))
        let first = try proxy.client()
        try first.send("GET /1 HTTP/1.1\r\nhost: x\r\n\r\n")
        let second = try proxy.client()
        try second.send("GET /2 HTTP/1.1\r\nhost: x\r\n\r\n")
        try proxy.server.send(Self.ok)
        #expect(try first.written() == Self.ok)
        proxy.loop.run()
        // The slot went to the waiting request, which took the pooled connection or a new one.
        let all = try proxy.connector.servers.map { try $0.written() }.joined()
        #expect(all.contains("GET /2 "))
    }

    @Test func refusedConnectionsAreRetriedAfterTheTurnAroundPauseThen503() throws {
        let proxy = try EmbeddedProxy(Self.config.replacingOccurrences(of: "backend be", with: "backend be\n    retries 2"))
        proxy.connector.refuse = true
        let client = try proxy.client()
        try client.send("GET / HTTP/1.1\r\nhost: x\r\n\r\n")
        #expect(proxy.connector.attempts == 1)
        proxy.advance(ms: 1_000)
        #expect(proxy.connector.attempts == 2)
        proxy.advance(ms: 1_000)
        #expect(proxy.connector.attempts == 3)
        #expect(try client.written().hasPrefix("HTTP/1.1 503 Service Unavailable\r\n"))
    }

    @Test func redispatchTriesAnotherServerOnTheLastRetry() throws {
        // Two servers, `balance source`, one retry with `option redispatch`: the retry goes to
        // the other server at once.
        let cfg = Self.config.replacingOccurrences(of: "backend be\n    server s1 127.0.0.1:9000",
                                                   with: "backend be\n    balance source\n    retries 1\n    option redispatch\n    server s1 127.0.0.1:9000\n    server s2 127.0.0.1:9001")
        let proxy = try EmbeddedProxy(cfg)
        proxy.connector.refuse = true
        let client = try proxy.client()
        try client.send("GET / HTTP/1.1\r\nhost: x\r\n\r\n")
        #expect(proxy.connector.attempts == 2)
        #expect(Set(proxy.connector.ports) == [9000, 9001])
        #expect(try client.written().hasPrefix("HTTP/1.1 503 "))
        let backend = try #require(proxy.runtime.backends["be"])
        #expect(backend.counters.redispatches.load(ordering: .relaxed) == 1)
    }

    @Test func softStopClosesAnIdleConnectionButAnswersAFirstRequestWithClose() throws {
        let proxy = try EmbeddedProxy(Self.config)
        let used = try proxy.client()
        try used.send("GET / HTTP/1.1\r\nhost: x\r\n\r\n")
        try proxy.server.send(Self.ok)
        _ = try used.written()
        let fresh = try proxy.client()
        for session in proxy.runtime.sessions(on: proxy.loop).all() { session.beginSoftStop() }
        #expect(!used.isActive)
        #expect(fresh.isActive)
        try fresh.send("GET / HTTP/1.1\r\nhost: x\r\n\r\n")
        try proxy.server.send(Self.ok)
        #expect(try fresh.written() == "HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok")
        proxy.loop.run()
        #expect(!fresh.isActive)
    }

    @Test func theProxyHeaderNamesTheClient() throws {
        let proxy = try EmbeddedProxy(Self.config.replacingOccurrences(of: "default_backend be", with: "default_backend be\n    option forwardfor"))
        let client = try proxy.client(acceptProxy: true)
        try client.send("PROXY TCP4 192.0.2.7 127.0.0.1 5555 8080\r\nGET / HTTP/1.1\r\nhost: x\r\n\r\n")
        #expect(try proxy.server.written().contains("X-Forwarded-For: 192.0.2.7\r\n"))
        let bad = try proxy.client(acceptProxy: true)
        try bad.send("GET / HTTP/1.1\r\nhost: x\r\n\r\n")
        #expect(!bad.isActive)
        #expect(try bad.written().isEmpty)
    }

    @Test func hundredContinueComesThroughBeforeTheBody() throws {
        let proxy = try EmbeddedProxy(Self.config)
        let client = try proxy.client()
        try client.send("POST /up HTTP/1.1\r\nhost: x\r\ncontent-length: 5\r\nexpect: 100-continue\r\n\r\n")
        #expect(try proxy.server.written().contains("expect: 100-continue\r\n"))
        try proxy.server.send("HTTP/1.1 100 Continue\r\n\r\n")
        #expect(try client.written() == "HTTP/1.1 100 Continue\r\n\r\n")
        try client.send("hello")
        #expect(try proxy.server.written() == "hello")
        try proxy.server.send(Self.ok)
        #expect(try client.written() == Self.ok)
    }

    @Test func anUpgradeBecomesATunnelBothWays() throws {
        let proxy = try EmbeddedProxy(Self.config)
        let client = try proxy.client()
        try client.send("GET /ws HTTP/1.1\r\nhost: x\r\nconnection: upgrade\r\nupgrade: websocket\r\n\r\n")
        let forwarded = try proxy.server.written()
        #expect(forwarded.contains("upgrade: websocket\r\n") && forwarded.contains("connection: upgrade\r\n"))
        try proxy.server.send("HTTP/1.1 101 Switching Protocols\r\nupgrade: websocket\r\n\r\nfrom-server")
        #expect(try client.written() == "HTTP/1.1 101 Switching Protocols\r\nupgrade: websocket\r\nconnection: upgrade\r\n\r\nfrom-server")
        try client.send("from-client")
        #expect(try proxy.server.written() == "from-client")
        // The tunnel's inactivity timeout (here the larger of client and server) ends it.
        proxy.advance(ms: 30_000)
        #expect(!client.isActive && !proxy.server.isActive)
    }

    @Test func aMalformedRequestGets400AndTheConnectionCloses() throws {
        let proxy = try EmbeddedProxy(Self.config)
        let client = try proxy.client()
        try client.send("GET / HTTP/1.1\r\nhost: x\r\ncontent-length: 1\r\ncontent-length: 2\r\n\r\n")
        #expect(try client.written().hasPrefix("HTTP/1.1 400 Bad request\r\n"))
        proxy.loop.run()
        #expect(proxy.connector.attempts == 0)
    }
}

/// TCP sessions reach servers through the same dialer.
@Suite struct TCPSessionEmbeddedTests {
    static let config = """
    defaults
        mode tcp
        timeout connect 4s
        timeout client 30s
        timeout server 10s
    frontend fe
        bind 127.0.0.1:8080
        default_backend be
    backend be
        balance source
        retries 1
        option redispatch
        server s0 127.0.0.1:9000
        server s1 127.0.0.1:9001
        server s2 127.0.0.1:9002
    """

    /// `balance source` hashes the client address over the usable servers (map-based: the hash
    /// modulo the total weight). On redispatch the first server is left out: the same key over
    /// the two others. Returns a client for which that lands on the second of the two, where a
    /// redispatch without the key (as TCP once did) would start the round-robin at the first.
    static func clientForSecondChoice() -> (address: String, first: Int, redispatched: Int) {
        for last in 2...200 {
            let bytes: [UInt8] = [127, 0, 0, UInt8(last)]
            let hash = LoadBalancer.sdbm(bytes)
            let first = Int(hash % 3)
            let others = [0, 1, 2].filter { $0 != first }
            let second = others[Int(hash % 2)]
            if second == others[1] { return ("127.0.0.\(last)", 9000 + first, 9000 + second) }
        }
        fatalError("no such client address")
    }

    @Test func redispatchKeepsTheBalanceKey() throws {
        let proxy = try EmbeddedProxy(Self.config)
        proxy.connector.refuse = true
        let (address, first, redispatched) = Self.clientForSecondChoice()
        let frontend = try #require(proxy.runtime.frontends.first)
        let client = EmbeddedChannel(handler: TCPSession(runtime: proxy.runtime, frontend: frontend), loop: proxy.loop)
        client.localAddress = try SocketAddress(ipAddress: "127.0.0.1", port: 8080)
        try client.connect(to: SocketAddress(ipAddress: address, port: 40_000)).wait()
        #expect(proxy.connector.ports == [first, redispatched])
        #expect(!client.isActive)
    }
}
