import Foundation
import NIOConcurrencyHelpers
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// `send-proxy` and `send-proxy-v2` on server lines: the PROXY header that opens each
/// connection to the server, read back by a frontend with `accept-proxy`, and compared byte for
/// byte with what Debian's haproxy sends.
@Suite(.serialized) struct SendProxyTests {
    static func chain(_ option: String, frontPort: Int, tcpPort: Int, innerPort: Int, check: String = "") -> String {
        """
        defaults
            timeout client 5s
            timeout server 5s
            timeout connect 5s
        frontend front
            mode http
            bind 127.0.0.1:\(frontPort)
            default_backend via_proxy
        frontend front_tcp
            mode tcp
            bind 127.0.0.1:\(tcpPort)
            default_backend via_proxy_tcp
        backend via_proxy
            mode http
            http-reuse always
            \(check)
            server inner 127.0.0.1:\(innerPort) \(option)
        backend via_proxy_tcp
            mode tcp
            server inner 127.0.0.1:\(innerPort) \(option)
        frontend inner
            mode http
            bind 127.0.0.1:\(innerPort) accept-proxy
            http-request return status 200 content-type text/plain lf-string "%[src] %[dst]:%[dst_port]"
        """
    }

    @Test(arguments: ["send-proxy", "send-proxy-v2"])
    func theServerSeesTheClientAndTheAddressItReached(_ option: String) throws {
        let front = try Ports.free(), tcp = try Ports.free(), inner = try Ports.free()
        let hasp = try Hasp(config: Self.chain(option, frontPort: front, tcpPort: tcp, innerPort: inner), waitFor: [front, tcp, inner])
        defer { hasp.stop() }
        // Two requests on one keep-alive connection, then another client: each connection's
        // header names its own client (a connection opened for one is never lent to another).
        let first = try curl(["--interface", "127.0.0.2", "http://127.0.0.1:\(front)/a", "-w", "\n", "http://127.0.0.1:\(front)/b"])
        #expect(first.stdout == "127.0.0.2 127.0.0.1:\(front)\n127.0.0.2 127.0.0.1:\(front)\n", "\(first)")
        let second = try curl(["--interface", "127.0.0.3", "http://127.0.0.1:\(front)/c"])
        #expect(second.stdout == "127.0.0.3 127.0.0.1:\(front)")
        let relayed = try curl(["--interface", "127.0.0.4", "http://127.0.0.1:\(tcp)/d"])
        #expect(relayed.stdout == "127.0.0.4 127.0.0.1:\(tcp)", "mode tcp too")
    }

    @Test(arguments: ["send-proxy", "send-proxy-v2"])
    func checksSendTheHeaderTooAndTheServerComesUp(_ option: String) throws {
        let front = try Ports.free(), tcp = try Ports.free(), inner = try Ports.free()
        let config = Self.chain(option + " check inter 200", frontPort: front, tcpPort: tcp, innerPort: inner,
                                check: "option httpchk GET /health")
            + "\nglobal\n    stats socket @DIR@/admin.sock level admin"
        let hasp = try Hasp(config: config, waitFor: [front, inner])
        defer { hasp.stop() }
        try eventually("the check to pass through the PROXY header") {
            let stat = (try? CLIClient.ask(hasp.dir.path("admin.sock"), "show stat")) ?? ""
            return stat.split(separator: "\n").contains { $0.hasPrefix("via_proxy,inner,") && $0.contains(",UP,") }
        }
    }

    /// The first bytes a server receives, from Hasp and from haproxy, for the same client:
    /// identical but for the client's port.
    @Test(.enabled(if: StickTableTests.haproxyAvailable, "needs Debian's haproxy"), arguments: ["send-proxy", "send-proxy-v2"])
    func theHeaderIsByteForByteHAProxys(_ option: String) throws {
        let captured = NIOLockedValueBox<[[UInt8]]>([])
        let server = try RawServer { fd in
            var buffer = [UInt8](repeating: 0, count: 4096)
            var got: [UInt8] = []
            // Up to the end of the request's head, past the header (version 2's signature
            // starts with CR LF CR LF itself).
            while !(got.count > 16 && got[16...].firstRange(of: Array("\r\n\r\n".utf8)) != nil) {
                let n = recv(fd, &buffer, buffer.count, 0)
                if n <= 0 { break }
                got += buffer[0..<n]
            }
            captured.withLockedValue { $0.append(got) }
            _ = "HTTP/1.0 200 OK\r\ncontent-length: 2\r\n\r\nok".withCString { send(fd, $0, 40, 0) }
        }
        defer { server.stop() }
        var headers: [[UInt8]] = []
        for binary in [HaspBinary.path, StickTableTests.haproxy] {
            let port = try Ports.free()
            let config = """
                defaults
                    mode http
                    timeout client 5s
                    timeout server 5s
                    timeout connect 5s
                frontend f
                    bind 127.0.0.1:\(port)
                    default_backend b
                backend b
                    server s1 127.0.0.1:\(server.port) \(option)
                """
            let proxy = try Hasp(config: config, waitFor: [port], binary: binary)
            defer { proxy.stop() }
            captured.withLockedValue { $0 = [] }
            _ = try curl(["--interface", "127.0.0.2", "--http1.1", "-H", "Connection: close", "http://127.0.0.1:\(port)/x"])
            try eventually("the server to read the request") { !captured.withLockedValue { $0 }.isEmpty }
            let bytes = captured.withLockedValue { $0[0] }
            headers.append(Self.headerMaskingClientPort(bytes, v2: option.hasSuffix("v2"), frontendPort: port))
        }
        #expect(headers[0] == headers[1], "hasp: \(headers[0]) haproxy: \(headers[1])")
    }

    /// The header alone, the client's port replaced by zeros and the frontend's port by ones.
    static func headerMaskingClientPort(_ bytes: [UInt8], v2: Bool, frontendPort: Int) -> [UInt8] {
        if v2 {
            guard bytes.count >= 16 else { return bytes }
            let length = Int(bytes[14]) << 8 | Int(bytes[15])
            var header = Array(bytes.prefix(16 + length))
            if header.count >= 28 { header[24] = 0; header[25] = 0; header[26] = 1; header[27] = 1 }
            return header
        }
        guard let end = bytes.firstRange(of: Array("\r\n".utf8)) else { return bytes }
        var fields = String(decoding: bytes[..<end.lowerBound], as: UTF8.self).split(separator: " ").map(String.init)
        if fields.count == 6 { fields[4] = "0"; fields[5] = fields[5] == "\(frontendPort)" ? "1" : fields[5] }
        return Array(fields.joined(separator: " ").utf8)
    }
}
