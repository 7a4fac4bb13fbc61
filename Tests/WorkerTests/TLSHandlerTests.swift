import NIOCore
import NIOEmbedded
import Shared
import Testing
@testable import Worker

/// The TLS handler's state machine, client and server in two embedded channels whose
/// outbound bytes the test carries across by hand.
@Suite struct TLSHandlerTests {
    static func serverContext(strictSNI: Bool = false, alpn: [String]? = nil) throws -> TLSServerContext {
        var bind = BindSettings(addresses: [], location: SourceLocation(file: "t.cfg", line: 1))
        bind.text = ":443"
        bind.tls.enabled = true
        bind.tls.strictSNI = strictSNI
        bind.tls.alpn = alpn
        bind.tls.certificates = [TLSCertificateFile(path: "a.pem", pem: Array(TestCertificates.a.utf8)),
                                 TLSCertificateFile(path: "b.pem", pem: Array(TestCertificates.b.utf8))]
        return try TLSServerContext.build(bind, proxy: "fe", global: GlobalTLSSettings())
    }

    static func clientContext(alpn: [String]? = nil) throws -> TLSClientContext {
        var tls = ServerTLSSettings()
        tls.enabled = true
        tls.verify = TLSVerifyMode.none
        tls.alpn = alpn
        return try #require(try TLSClientContext.build(tls, global: GlobalSettings(), loops: 1))
    }

    /// A client and a server handler, each in its channel.
    struct Pair {
        let client = EmbeddedChannel()
        let server = EmbeddedChannel()
        let clientTLS: TLSHandler
        let serverTLS: TLSHandler
        var failures: [TLSFailure] = []

        init(server context: TLSServerContext, client: TLSClientContext, name: String?) throws {
            serverTLS = TLSHandler(role: .server(context), handshakeTimeout: nil)
            clientTLS = TLSHandler(role: .client(client, serverName: name, session: nil), handshakeTimeout: nil)
            try self.server.setOption(.allowRemoteHalfClosure, value: true).wait()
            try self.server.pipeline.syncOperations.addHandler(serverTLS)
            try self.client.pipeline.syncOperations.addHandler(clientTLS)
            try self.server.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 443)).wait()
            try self.client.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 443)).wait()
        }

        /// Carries what each side wrote to the other until nothing moves.
        func pump() throws {
            var moved = true
            var rounds = 0
            while moved, rounds < 20 {
                moved = false
                rounds += 1
                while let bytes = try client.readOutbound(as: ByteBuffer.self) {
                    if bytes.readableBytes > 0 { try server.writeInbound(bytes) }
                    moved = true
                }
                while let bytes = try server.readOutbound(as: ByteBuffer.self) {
                    if bytes.readableBytes > 0 { try client.writeInbound(bytes) }
                    moved = true
                }
            }
        }

        func plaintext(_ channel: EmbeddedChannel) throws -> String {
            var text = ""
            while let bytes = try channel.readInbound(as: ByteBuffer.self) { text += String(buffer: bytes) }
            return text
        }
    }

    @Test func handshakeSelectsByNameAndCarriesDataBothWays() throws {
        let pair = try Pair(server: try Self.serverContext(alpn: ["h2", "http/1.1"]), client: try Self.clientContext(alpn: ["h2", "http/1.1"]),
                            name: "b.test")
        pair.client.writeAndFlush(ByteBuffer(string: "early"), promise: nil)
        #expect(pair.clientTLS.state == .handshaking)
        try pair.pump()
        #expect(pair.clientTLS.state == .open && pair.serverTLS.state == .open)
        #expect(pair.serverTLS.facts.serverName == "b.test")
        #expect(pair.serverTLS.facts.ownCertificate?.subject == "/CN=b.test")
        #expect(pair.serverTLS.facts.protocolName == "TLSv1.3")
        // `h2` is never chosen: HTTP/2 is not served yet.
        #expect(pair.serverTLS.facts.alpn == "http/1.1")
        #expect(pair.clientTLS.facts.peerCertificate?.commonNames == ["b.test"])
        // A write made during the handshake waited for it.
        #expect(try pair.plaintext(pair.server) == "early")
        try pair.server.writeAndFlush(ByteBuffer(string: "answer")).wait()
        try pair.pump()
        #expect(try pair.plaintext(pair.client) == "answer")
    }

    @Test func unknownNamesGetTheFirstCertificateUnlessStrict() throws {
        let lenient = try Pair(server: try Self.serverContext(), client: try Self.clientContext(), name: "other.test")
        try lenient.pump()
        #expect(lenient.serverTLS.facts.ownCertificate?.subject == "/CN=a.test")
        let strict = try Pair(server: try Self.serverContext(strictSNI: true), client: try Self.clientContext(), name: "other.test")
        var failure: TLSFailure?
        strict.serverTLS.onFailure = { failure = $0 }
        try strict.pump()
        #expect(strict.serverTLS.state == .closed)
        guard case .handshake = failure else {
            Issue.record("expected a handshake failure, got \(String(describing: failure))")
            return
        }
        #expect(!strict.server.isActive)
    }

    @Test func garbageInsteadOfAClientHelloFailsOnlyThatConnection() throws {
        let server = EmbeddedChannel()
        let handler = TLSHandler(role: .server(try Self.serverContext()), handshakeTimeout: nil)
        var failures: [TLSFailure] = []
        handler.onFailure = { failures.append($0) }
        try server.pipeline.syncOperations.addHandler(handler)
        try server.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 443)).wait()
        try server.writeInbound(ByteBuffer(string: "GET / HTTP/1.1\r\nhost: a\r\n\r\n"))
        #expect(failures.count == 1)
        #expect(handler.facts.errorText?.contains("http request") == true, "\(handler.facts.errorText ?? "-")")
        #expect(!server.isActive)
    }

    @Test func aStalledHandshakeTimesOut() throws {
        let loop = EmbeddedEventLoop()
        let server = EmbeddedChannel(loop: loop)
        let handler = TLSHandler(role: .server(try Self.serverContext()), handshakeTimeout: .seconds(5))
        var failures: [TLSFailure] = []
        handler.onFailure = { failures.append($0) }
        try server.pipeline.syncOperations.addHandler(handler)
        try server.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 443)).wait()
        try server.writeInbound(ByteBuffer(bytes: [0x16, 0x03, 0x01, 0x02, 0x00, 0x01]))
        loop.advanceTime(by: .seconds(4))
        #expect(failures.isEmpty)
        loop.advanceTime(by: .seconds(1))
        #expect(failures == [.timeout])
        #expect(!server.isActive)
    }

    @Test func closeNotifyEndsTheInputAsAHalfClose() throws {
        let pair = try Pair(server: try Self.serverContext(), client: try Self.clientContext(), name: "a.test")
        try pair.pump()
        final class Events: ChannelInboundHandler {
            typealias InboundIn = ByteBuffer
            var inputClosed = 0
            func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
                if let e = event as? ChannelEvent, e == .inputClosed { inputClosed += 1 }
            }
        }
        let events = Events()
        try pair.server.pipeline.syncOperations.addHandler(events)
        // The client closes (an embedded channel cannot half-close): its close_notify
        // reaches the server as the end of the input, not of the connection.
        pair.client.close(promise: nil)
        try pair.pump()
        #expect(events.inputClosed == 1)
        #expect(pair.server.isActive, "the server side may still answer")
        #expect(pair.serverTLS.state == .open)
        try pair.server.writeAndFlush(ByteBuffer(string: "late answer")).wait()
        let answer = try pair.server.readOutbound(as: ByteBuffer.self)
        #expect((answer?.readableBytes ?? 0) > "late answer".utf8.count, "the answer still leaves, encrypted")
    }
}
