import Foundation
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// A frontend on `port` forwarding to the given backends, with test-friendly timeouts.
func httpConfig(port: Int, servers: [(String, Int)], backendExtra: String = "", serverExtra: String = "",
                globalExtra: String = "", frontendExtra: String = "", timeoutServer: String = "10s") -> String {
    """
    global
        nbthread 2
    \(globalExtra)
    defaults
        mode http
        timeout connect 2s
        timeout client 10s
        timeout server \(timeoutServer)
        timeout queue 5s
    frontend fe
        bind 127.0.0.1:\(port)
    \(frontendExtra)
        default_backend be
    backend be
    \(backendExtra)
    \(servers.map { "    server \($0.0) 127.0.0.1:\($0.1) \(serverExtra)" }.joined(separator: "\n"))
    """
}

@Suite(.serialized) struct HTTPProxyTests {
    @Test func keepAliveIsReusedOnBothSides() throws {
        let backend = try TestBackend()
        defer { backend.stop() }
        let port = try Ports.free()
        let hasp = try Hasp(config: httpConfig(port: port, servers: [("s1", backend.port)]), waitFor: [port])
        defer { hasp.stop() }
        let client = try RawClient(port: port)
        for _ in 0..<20 {
            try client.send("GET /conn HTTP/1.1\r\nHost: x\r\n\r\n")
            let response = try client.readResponses(1)[0]
            #expect(response.hasPrefix("HTTP/1.1 200 OK\r\n"))
            #expect(response.hasSuffix("\r\n\r\n1"))
        }
        // 20 requests on one client connection used one server connection.
        #expect(backend.acceptedConnections.load(ordering: .relaxed) == 1)
        #expect(backend.requests.load(ordering: .relaxed) == 20)

        // A second client's later requests may take the first one's idle connection back (safe reuse).
        let second = try RawClient(port: port)
        try second.send("GET /conn HTTP/1.1\r\nHost: x\r\n\r\n")
        _ = try second.readResponses(1)
        try second.send("GET /conn HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        let last = try second.readResponses(1)[0]
        #expect(last.lowercased().contains("connection: close"))
        #expect(second.isClosedByPeer())
    }

    @Test func pipelinedRequestsAreAnsweredInOrder() throws {
        let backend = try TestBackend()
        defer { backend.stop() }
        let port = try Ports.free()
        let hasp = try Hasp(config: httpConfig(port: port, servers: [("s1", backend.port)]), waitFor: [port])
        defer { hasp.stop() }
        let client = try RawClient(port: port)
        try client.send("GET /slow/200 HTTP/1.1\r\nHost: x\r\n\r\nGET /hello HTTP/1.1\r\nHost: x\r\n\r\nGET /status/404 HTTP/1.1\r\nHost: x\r\n\r\n")
        let responses = try client.readResponses(3)
        #expect(responses.count == 3)
        #expect(responses[0].hasSuffix("slept 200"))
        #expect(responses[1].hasSuffix("b1"))
        #expect(responses[2].hasPrefix("HTTP/1.1 404"))
    }

    @Test func hundredMebibyteUploadsAndDownloadsKeepTheirBytes() throws {
        let backend = try TestBackend()
        defer { backend.stop() }
        let port = try Ports.free()
        let hasp = try Hasp(config: httpConfig(port: port, servers: [("s1", backend.port)]), waitFor: [port])
        defer { hasp.stop() }
        let dir = try TempDir()
        let size = 100 << 20
        // Upload file with the pattern; its checksum computed here.
        let uploadPath = dir.path("upload.bin")
        _ = FileManager.default.createFile(atPath: uploadPath, contents: nil)
        let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: uploadPath))
        var expected = FNV1a()
        var offset = 0
        while offset < size {
            let chunk = Pattern.chunk(from: offset, count: min(1 << 20, size - offset))
            expected.add(chunk)
            handle.write(Data(chunk))
            offset += chunk.count
        }
        try handle.close()

        let url = "http://127.0.0.1:\(port)"
        let plain = try curl(["--data-binary", "@\(uploadPath)", "-H", "Expect:", "\(url)/sum"], timeout: 120)
        #expect(plain.stdout == "len=\(size) fnv=\(expected.hex)", "content-length upload: \(plain.stderr)")
        let chunked = try curl(["--data-binary", "@\(uploadPath)", "-H", "Transfer-Encoding: chunked", "-H", "Expect:", "\(url)/sum"], timeout: 120)
        #expect(chunked.stdout == "len=\(size) fnv=\(expected.hex)", "chunked upload: \(chunked.stderr)")
        let withContinue = try curl(["--data-binary", "@\(uploadPath)", "-H", "Expect: 100-continue", "\(url)/sum"], timeout: 120)
        #expect(withContinue.stdout == "len=\(size) fnv=\(expected.hex)", "100-continue upload: \(withContinue.stderr)")

        for route in ["bytes", "chunked"] {
            let out = dir.path("download-\(route).bin")
            let r = try curl(["-o", out, "\(url)/\(route)/\(size)"], timeout: 120)
            #expect(r.status == 0, "\(r.stderr)")
            var got = FNV1a()
            let data = try Data(contentsOf: URL(fileURLWithPath: out))
            got.add(data)
            #expect(data.count == size)
            #expect(got.hex == expected.hex, "\(route) download checksum")
        }
    }

    @Test func backendDownGives503() throws {
        let deadPort = try Ports.free()
        let port = try Ports.free()
        let hasp = try Hasp(config: httpConfig(port: port, servers: [("s1", deadPort)], backendExtra: "    retries 1"), waitFor: [port])
        defer { hasp.stop() }
        let client = try RawClient(port: port)
        try client.send("GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        let response = try client.readResponses(1)[0]
        #expect(response == """
        HTTP/1.1 503 Service Unavailable\r
        content-length: 107\r
        cache-control: no-cache\r
        content-type: text/html\r
        \r
        <html><body><h1>503 Service Unavailable</h1>
        No server is available to handle this request.
        </body></html>

        """)
    }

    /// Retries end in a 503, and a redispatch reaches the live server. The timing itself
    /// (min(timeout connect, 1 s) between two attempts on the same server, no pause before a
    /// redispatch) is proven to the millisecond by `HTTPSessionEmbeddedTests` and `ExchangeTests`.
    @Test func retriesEndIn503AndARedispatchReachesTheLiveServer() throws {
        let deadPort = try Ports.free()
        let port = try Ports.free()
        let config = httpConfig(port: port, servers: [("s1", deadPort)], backendExtra: "    retries 2\n    timeout connect 300ms")
        let hasp = try Hasp(config: config, waitFor: [port])
        defer { hasp.stop() }
        #expect(fetchStatus(port) == "HTTP/1.1 503")

        let backend = try TestBackend(name: "b1")
        defer { backend.stop() }
        let other = try Ports.free()
        let redispatching = try Hasp(config: httpConfig(port: other, servers: [("dead", deadPort), ("alive", backend.port)],
                                                        backendExtra: "    retries 1\n    option redispatch\n    balance first\n    timeout connect 1s"),
                                     waitFor: [other])
        defer { redispatching.stop() }
        #expect(fetchStatus(other) == "HTTP/1.1 200")
    }

    @Test func serverTimeoutGives504() throws {
        let backend = try TestBackend()
        defer { backend.stop() }
        let port = try Ports.free()
        let hasp = try Hasp(config: httpConfig(port: port, servers: [("s1", backend.port)], timeoutServer: "300ms"), waitFor: [port])
        defer { hasp.stop() }
        let client = try RawClient(port: port)
        try client.send("GET /hold HTTP/1.1\r\nHost: x\r\n\r\n")
        let response = try client.readResponses(1)[0]
        // When it comes (after exactly `timeout server` of silence) is `HTTPSessionEmbeddedTests`'.
        #expect(response.hasPrefix("HTTP/1.1 504 Gateway Time-out\r\ncontent-length: 92\r\n"))
        #expect(response.hasSuffix("<html><body><h1>504 Gateway Time-out</h1>\nThe server didn't respond in time.\n</body></html>\n"))
    }

    @Test func serverMaxconnQueuesRequests() throws {
        let backend = try TestBackend(threads: 2)
        defer { backend.stop() }
        let port = try Ports.free()
        let hasp = try Hasp(config: httpConfig(port: port, servers: [("s1", backend.port)], serverExtra: "maxconn 1"), waitFor: [port])
        defer { hasp.stop() }
        let clients = try (0..<4).map { _ in try RawClient(port: port) }
        for c in clients { try c.send("GET /slow/150 HTTP/1.1\r\nHost: x\r\n\r\n") }
        for c in clients {
            let r = try c.readResponses(1)[0]
            #expect(r.hasPrefix("HTTP/1.1 200 OK"))
        }
        #expect(backend.maxConcurrent.load(ordering: .relaxed) == 1)
        #expect(backend.requests.load(ordering: .relaxed) == 4)
    }

    @Test func queueTimeoutGives503() throws {
        let backend = try TestBackend(threads: 2)
        defer { backend.stop() }
        let port = try Ports.free()
        let config = httpConfig(port: port, servers: [("s1", backend.port)], backendExtra: "    timeout queue 200ms", serverExtra: "maxconn 1")
        let hasp = try Hasp(config: config, waitFor: [port])
        defer { hasp.stop() }
        let first = try RawClient(port: port)
        try first.send("GET /slow/1500 HTTP/1.1\r\nHost: x\r\n\r\n")
        try eventually("the first request to reach the server") { backend.requests.load(ordering: .relaxed) == 1 }
        let second = try RawClient(port: port)
        try second.send("GET /hello HTTP/1.1\r\nHost: x\r\n\r\n")
        let r = try second.readResponses(1)[0]
        #expect(r.hasPrefix("HTTP/1.1 503 Service Unavailable"))
        #expect(try first.readResponses(1)[0].hasPrefix("HTTP/1.1 200 OK"))
    }

    @Test func roundRobinSpreadsByWeight() throws {
        let a = try TestBackend(name: "a")
        let b = try TestBackend(name: "b")
        defer { a.stop(); b.stop() }
        let port = try Ports.free()
        let config = httpConfig(port: port, servers: []) + "\n    server a 127.0.0.1:\(a.port) weight 1\n    server b 127.0.0.1:\(b.port) weight 3\n"
        let hasp = try Hasp(config: config, waitFor: [port])
        defer { hasp.stop() }
        var counts: [String: Int] = [:]
        for _ in 0..<40 {
            let client = try RawClient(port: port)
            try client.send("GET /hello HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            let r = try client.readResponses(1)[0]
            counts[String(r.suffix(1)), default: 0] += 1
        }
        #expect(counts == ["a": 10, "b": 30])
    }

    @Test func forwardForAndHopByHopHeaders() throws {
        let backend = try TestBackend()
        defer { backend.stop() }
        let port = try Ports.free()
        let config = httpConfig(port: port, servers: [("s1", backend.port)], backendExtra: "    option forwardfor")
        let hasp = try Hasp(config: config, waitFor: [port])
        defer { hasp.stop() }
        let client = try RawClient(port: port)
        try client.send("GET /headers HTTP/1.1\r\nHost: x\r\nConnection: keep-alive, X-Secret\r\nX-Secret: 1\r\nKeep-Alive: 5\r\nX-Kept: yes\r\n\r\n")
        let r = try client.readResponses(1)[0]
        #expect(r.contains("x-forwarded-for: 127.0.0.1"))
        #expect(r.contains("x-kept: yes"))
        #expect(!r.contains("x-secret"))
        #expect(!r.contains("keep-alive: 5"))
    }

    @Test func httpRequestReturnAnswersLocally() throws {
        let port = try Ports.free()
        let config = """
        defaults
            mode http
            timeout client 5s
        frontend fe
            bind 127.0.0.1:\(port)
            http-request return status 201 content-type text/plain string "made here"
        """
        let hasp = try Hasp(config: config, waitFor: [port])
        defer { hasp.stop() }
        let client = try RawClient(port: port)
        try client.send("GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        #expect(try client.readResponses(1)[0] == "HTTP/1.1 201 Created\r\ncontent-length: 9\r\ncontent-type: text/plain\r\n\r\nmade here")
        try client.send("GET / HTTP/1.0\r\n\r\n")
        #expect(try client.readResponses(1)[0] == "HTTP/1.0 201 Created\r\ncontent-length: 9\r\ncontent-type: text/plain\r\nconnection: close\r\n\r\nmade here")
        #expect(client.isClosedByPeer())
    }

    /// `errorfile` pages replace the built-in ones: the backend's once it was chosen, else the
    /// frontend's; the connection closes after them.
    @Test func errorfilesReplaceBuiltInPages() throws {
        let port = try Ports.free()
        let dead = try Ports.free()
        let dir = try TempDir()
        let unavailable = "HTTP/1.0 503 Service Unavailable\r\ncache-control: no-cache\r\nconnection: close\r\ncontent-type: text/plain\r\n\r\nback soon\n"
        let bad = "HTTP/1.0 400 Bad request\r\nconnection: close\r\ncontent-type: text/plain\r\n\r\nnope\n"
        let unavailablePath = try dir.write("503.http", unavailable)
        let badPath = try dir.write("400.http", bad)
        let hasp = try Hasp(config: """
            defaults
                mode http
                timeout connect 1s
                timeout client 5s
                timeout server 5s
            frontend fe
                bind 127.0.0.1:\(port)
                errorfile 400 \(badPath)
                default_backend be
            backend be
                errorfile 503 \(unavailablePath)
                server s1 127.0.0.1:\(dead)
            """, waitFor: [port])
        defer { hasp.stop() }
        let client = try RawClient(port: port)
        try client.send("GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        #expect(String(decoding: client.readToEnd(), as: UTF8.self) == unavailable)
        let garbage = try RawClient(port: port)
        try garbage.send("NOT HTTP\r\n\r\n")
        #expect(String(decoding: garbage.readToEnd(), as: UTF8.self) == bad)
    }
}

@Suite(.serialized) struct MaxconnTests {
    @Test(arguments: ["frontend", "global", "bind"])
    func acceptingPausesAtMaxconnAndResumes(_ level: String) throws {
        let port = try Ports.free()
        let limit = level == "frontend" ? "    maxconn 2\n" : ""
        let global = level == "global" ? "    maxconn 2\n" : ""
        let bindLimit = level == "bind" ? " maxconn 2" : ""
        let config = """
        global
            nbthread 1
        \(global)
        defaults
            mode http
            timeout client 10s
        frontend fe
            bind 127.0.0.1:\(port)\(bindLimit)
        \(limit)
            http-request return status 200 content-type text/plain string "ok"
        """
        let hasp = try Hasp(config: config, waitFor: [port])
        defer { hasp.stop() }
        let first = try RawClient(port: port)
        let second = try RawClient(port: port)
        for c in [first, second] {
            try c.send("GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            #expect(try c.readResponses(1)[0].hasSuffix("ok"))
        }
        // The third connection waits in the backlog: no answer while two are open.
        let third = try RawClient(port: port, timeout: 0.4)
        try third.send("GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        #expect(throws: (any Error).self) { _ = try third.readResponses(1) }
        // Closing one lets it in.
        try first.send("GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        _ = try first.readResponses(1)
        var answered = false
        try eventually("the waiting connection to be served") {
            if let r = try? third.readResponses(1), r.first?.hasSuffix("ok") == true { answered = true }
            return answered
        }
    }
}

@Suite(.serialized) struct AcceptProxyTests {
    /// `bind ... accept-proxy`: the PROXY header's client is the one `forwardfor` reports; a
    /// connection without a header is dropped; tcp mode forwards what follows the header.
    @Test func proxyHeadersAnnounceTheClient() throws {
        let backend = try TestBackend(name: "b1")
        defer { backend.stop() }
        let port = try Ports.free()
        let tcpPort = try Ports.free()
        let hasp = try Hasp(config: """
            defaults
                mode http
                timeout connect 2s
                timeout client 5s
                timeout server 5s
            frontend fe
                bind 127.0.0.1:\(port) accept-proxy
                option forwardfor
                default_backend be
            backend be
                server s1 127.0.0.1:\(backend.port)
            listen relay
                mode tcp
                bind 127.0.0.1:\(tcpPort) accept-proxy
                server s1 127.0.0.1:\(backend.port)
            """, waitFor: [port, tcpPort])
        defer { hasp.stop() }
        let v1 = try RawClient(port: port)
        try v1.send("PROXY TCP4 192.0.2.7 127.0.0.1 56324 \(port)\r\nGET /headers HTTP/1.1\r\nHost: x\r\n\r\n")
        #expect(try v1.readResponses(1)[0].contains("x-forwarded-for: 192.0.2.7"))
        // The header came once: the next request on the connection is plain HTTP.
        try v1.send("GET /headers HTTP/1.1\r\nHost: x\r\n\r\n")
        #expect(try v1.readResponses(1)[0].contains("x-forwarded-for: 192.0.2.7"))

        var v2 = proxyV2Header(ip: [198, 51, 100, 4], port: 4000)
        v2 += Array("GET /headers HTTP/1.1\r\nHost: x\r\n\r\n".utf8)
        let binary = try RawClient(port: port)
        try binary.send(v2)
        #expect(try binary.readResponses(1)[0].contains("x-forwarded-for: 198.51.100.4"))

        let plain = try RawClient(port: port)
        try plain.send("GET /headers HTTP/1.1\r\nHost: x\r\n\r\n")
        #expect(plain.readToEnd().isEmpty)

        let relayed = try RawClient(port: tcpPort)
        try relayed.send("PROXY TCP4 192.0.2.7 127.0.0.1 56324 \(tcpPort)\r\nGET /hello HTTP/1.1\r\nHost: x\r\n\r\n")
        #expect(try relayed.readResponses(1)[0].hasSuffix("b1"))
    }

    /// Small bodies that come with their head leave in one write with it; bodies that come
    /// later, or are larger, follow on their own. Every form keeps its bytes and its order.
    @Test func responseBodiesKeepTheirBytesHoweverTheServerSendsThem() throws {
        @Sendable func body(_ n: Int) -> String { String((0..<n).map { Character(UnicodeScalar(UInt8(97 + $0 % 26))) }) }
        // A split body leaves the server only once the client has the head: the proxy read it alone.
        let headSeen = DispatchSemaphore(value: 0)
        let upstream = try RawServer { fd in
            var buffer = [UInt8](repeating: 0, count: 4096)
            var pending: [UInt8] = []
            func sendAll(_ text: String) { _ = Array(text.utf8).withUnsafeBytes { send(fd, $0.baseAddress, $0.count, 0) } }
            while true {
                guard let end = pending.firstRange(of: Array("\r\n\r\n".utf8)) else {
                    let n = recv(fd, &buffer, buffer.count, 0)
                    if n <= 0 { return }
                    pending.append(contentsOf: buffer[0..<n])
                    continue
                }
                let line = String(decoding: pending[..<end.lowerBound], as: UTF8.self).split(separator: " ")
                pending.removeSubrange(..<end.upperBound)
                let parts = line[1].split(separator: "/")
                let size = Int(parts[1]) ?? 0
                let head = "HTTP/1.1 200 OK\r\nContent-Length: \(size)\r\n\r\n"
                if parts[0] == "together" {
                    sendAll(head + body(size))
                } else {
                    sendAll(head)
                    guard headSeen.wait(timeout: .now() + 5) == .success else { return }
                    sendAll(body(size))
                }
            }
        }
        defer { upstream.stop() }
        let port = try Ports.free()
        let hasp = try Hasp(config: httpConfig(port: port, servers: [("s", upstream.port)]), waitFor: [port])
        defer { hasp.stop() }
        let client = try RawClient(port: port)
        /// Reads one response; for a split one, lets the server go on once the head is here.
        func readResponse(size: Int, split: Bool) throws -> String {
            var data: [UInt8] = []
            var chunk = [UInt8](repeating: 0, count: 65536)
            var released = !split
            while true {
                if let end = data.firstRange(of: Array("\r\n\r\n".utf8)) {
                    if !released {
                        released = true
                        headSeen.signal()
                    }
                    if data.count >= end.upperBound + size { return String(decoding: data, as: UTF8.self) }
                }
                let n = recv(client.fd, &chunk, chunk.count, 0)
                if n <= 0 { throw HarnessError("connection ended after \(String(decoding: data, as: UTF8.self).debugDescription)") }
                data.append(contentsOf: chunk[0..<n])
            }
        }
        for path in ["together/0", "together/1", "together/4096", "together/4097", "together/30000", "split/10", "split/5000", "together/7"] {
            try client.send("GET /\(path) HTTP/1.1\r\nHost: x\r\n\r\n")
            let size = Int(path.split(separator: "/")[1])!
            let response = try readResponse(size: size, split: path.hasPrefix("split"))
            #expect(response.hasPrefix("HTTP/1.1 200 OK\r\n"), "\(path)")
            #expect(response.hasSuffix("\r\n\r\n" + body(size)), "\(path)")
        }
        #expect(upstream.accepted.load(ordering: .relaxed) == 1, "one server connection, reused throughout")
    }
}

/// A PROXY v2 header for a TCP over IPv4 client.
func proxyV2Header(ip: [UInt8], port: Int) -> [UInt8] {
    let signature: [UInt8] = [0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D, 0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A]
    return signature + [0x21, 0x11, 0x00, 0x0C] + ip + [127, 0, 0, 1] + [UInt8(port >> 8), UInt8(port & 0xFF), 0x00, 0x50]
}

