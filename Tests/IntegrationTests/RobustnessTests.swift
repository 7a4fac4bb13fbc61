import Foundation
import Testing

#if canImport(Glibc)
import Glibc
#endif

let badRequest400 = """
HTTP/1.1 400 Bad request\r
Content-length: 90\r
Cache-Control: no-cache\r
Connection: close\r
Content-Type: text/html\r
\r
<html><body><h1>400 Bad request</h1>
Your browser sent an invalid request.
</body></html>

"""

@Suite(.serialized) struct MalformedRequestTests {
    static let inputs: [String] = [
        "GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd",
        "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
        "GET / HTTP/1.1\r\nHost: x\r\nBad Header: y\r\n\r\n",
        "GET / HTTP/1.1\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: x\r\nX-Big: \(String(repeating: "a", count: 20_000))\r\n\r\n",
        "NOT-HTTP\r\n\r\n",
    ]

    @Test func malformedRequestsGet400AndAClose() throws {
        let backend = try TestBackend()
        defer { backend.stop() }
        let port = try Ports.free()
        let hasp = try Hasp(config: httpConfig(port: port, servers: [("s1", backend.port)]), waitFor: [port])
        defer { hasp.stop() }
        for input in Self.inputs {
            let client = try RawClient(port: port)
            try client.send(input)
            let answer = String(decoding: client.readToEnd(), as: UTF8.self)
            #expect(answer == badRequest400, "for \(input.prefix(60).debugDescription)")
        }
        #expect(backend.requests.load(ordering: .relaxed) == 0)
        // The process is still serving.
        let client = try RawClient(port: port)
        try client.send("GET /hello HTTP/1.1\r\nHost: x\r\n\r\n")
        #expect(try client.readResponses(1)[0].hasSuffix("b1"))
    }

    @Test func incompleteRequestTimesOutWith408() throws {
        let port = try Ports.free()
        let config = httpConfig(port: port, servers: [("s1", 9)], frontendExtra: "    timeout http-request 300ms")
        let hasp = try Hasp(config: config, waitFor: [port])
        defer { hasp.stop() }
        let client = try RawClient(port: port)
        try client.send("GET / HTTP/1.1\r\nHost: x\r\n")
        let answer = String(decoding: client.readToEnd(), as: UTF8.self)
        #expect(answer.hasPrefix("HTTP/1.1 408 Request Time-out\r\nContent-length: 110\r\n"))
    }
}

@Suite(.serialized) struct TunnelAndTCPTests {
    @Test func webSocketUpgradeBecomesATunnel() throws {
        // A server that accepts the upgrade, then echoes raw bytes.
        let upstream = try RawServer { fd in
            var buffer = [UInt8](repeating: 0, count: 4096)
            var head: [UInt8] = []
            while head.firstRange(of: Array("\r\n\r\n".utf8)) == nil {
                let n = recv(fd, &buffer, buffer.count, 0)
                if n <= 0 { return }
                head.append(contentsOf: buffer[0..<n])
            }
            let reply = Array("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n".utf8)
            _ = reply.withUnsafeBytes { send(fd, $0.baseAddress, $0.count, 0) }
            while true {
                let n = recv(fd, &buffer, buffer.count, 0)
                if n <= 0 { return }
                _ = buffer.withUnsafeBytes { send(fd, $0.baseAddress, n, 0) }
            }
        }
        defer { upstream.stop() }
        let port = try Ports.free()
        let hasp = try Hasp(config: httpConfig(port: port, servers: [("ws", upstream.port)]), waitFor: [port])
        defer { hasp.stop() }
        let client = try RawClient(port: port)
        try client.send("GET /chat HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n")
        let head = try client.readResponses(1)[0]
        #expect(head.hasPrefix("HTTP/1.1 101 Switching Protocols\r\n"))
        #expect(head.lowercased().contains("upgrade: websocket"))
        for message in ["frame-one", "second frame", String(repeating: "z", count: 100_000)] {
            try client.send(message)
            var got: [UInt8] = []
            var buffer = [UInt8](repeating: 0, count: 65536)
            while got.count < message.utf8.count {
                let n = recv(client.fd, &buffer, buffer.count, 0)
                if n <= 0 { break }
                got.append(contentsOf: buffer[0..<n])
            }
            #expect(String(decoding: got, as: UTF8.self) == message)
        }
    }

    @Test func tcpRelayHonoursHalfClose() throws {
        // The server reads until EOF, then answers with the byte count and closes.
        let upstream = try RawServer { fd in
            var total = 0
            var buffer = [UInt8](repeating: 0, count: 65536)
            while true {
                let n = recv(fd, &buffer, buffer.count, 0)
                if n <= 0 { break }
                total += n
            }
            let reply = Array("got \(total)".utf8)
            _ = reply.withUnsafeBytes { send(fd, $0.baseAddress, $0.count, 0) }
        }
        defer { upstream.stop() }
        let port = try Ports.free()
        let config = """
        defaults
            mode tcp
            timeout connect 2s
            timeout client 10s
            timeout server 10s
        listen relay
            bind 127.0.0.1:\(port)
            server s1 127.0.0.1:\(upstream.port)
        """
        let hasp = try Hasp(config: config, waitFor: [port])
        defer { hasp.stop() }
        let client = try RawClient(port: port)
        let payload = [UInt8](repeating: 7, count: 3_000_000)
        try client.send(payload)
        client.shutdownWrite()
        #expect(String(decoding: client.readToEnd(), as: UTF8.self) == "got 3000000")
    }
}

@Suite(.serialized) struct SoftStopTests {
    @Test func sigusr1DrainsInFlightRequestsThenExitsZero() throws {
        let backend = try TestBackend()
        defer { backend.stop() }
        let port = try Ports.free()
        let hasp = try Hasp(config: httpConfig(port: port, servers: [("s1", backend.port)]), waitFor: [port])
        defer { hasp.stop() }
        let idle = try RawClient(port: port)
        try idle.send("GET /hello HTTP/1.1\r\nHost: x\r\n\r\n")
        _ = try idle.readResponses(1)
        let busy = try RawClient(port: port)
        try busy.send("GET /slow/800 HTTP/1.1\r\nHost: x\r\n\r\n")
        try eventually("the slow request to reach the server") { backend.requests.load(ordering: .relaxed) == 2 }
        hasp.child.signal(SIGUSR1)
        // The idle keep-alive connection is closed; the busy one completes, with Connection: close.
        #expect(idle.isClosedByPeer())
        let response = try busy.readResponses(1)[0]
        #expect(response.hasPrefix("HTTP/1.1 200 OK"))
        #expect(response.lowercased().contains("connection: close"))
        #expect(response.hasSuffix("slept 800"))
        let exit = try hasp.child.waitExit(timeout: 5)
        #expect(exit.code == 0 && !exit.bySignal)
        // Three front connections: the readiness probe of the harness and the two clients.
        #expect(hasp.child.stderr.contains("Proxy fe stopped (cumulated conns: FE: 3, BE: 2)."))
    }

    @Test func hardStopAfterBoundsTheDrain() throws {
        let backend = try TestBackend()
        defer { backend.stop() }
        let port = try Ports.free()
        let config = httpConfig(port: port, servers: [("s1", backend.port)], globalExtra: "    hard-stop-after 500ms")
        let hasp = try Hasp(config: config, waitFor: [port])
        defer { hasp.stop() }
        let busy = try RawClient(port: port)
        try busy.send("GET /hold HTTP/1.1\r\nHost: x\r\n\r\n")
        try eventually("the request to reach the server") { backend.requests.load(ordering: .relaxed) == 1 }
        let started = Date()
        hasp.child.signal(SIGUSR1)
        let exit = try hasp.child.waitExit(timeout: 5)
        let elapsed = Date().timeIntervalSince(started)
        #expect(exit.code == 0)
        #expect(elapsed >= 0.4 && elapsed < 3)
    }

    @Test func sigtermStopsAtOnce() throws {
        let port = try Ports.free()
        let hasp = try Hasp(config: httpConfig(port: port, servers: [("s1", 9)]), waitFor: [port])
        defer { hasp.stop() }
        hasp.child.signal(SIGTERM)
        let exit = try hasp.child.waitExit(timeout: 5)
        #expect(exit.bySignal && exit.code == SIGTERM)
    }
}
