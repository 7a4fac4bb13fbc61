import NIOCore
import Testing
@testable import Worker

@Suite struct ProxyProtocolTests {
    func parse(_ text: String) -> ProxyProtocolHeader { ProxyProtocolHeader.parse(Array(text.utf8)) }

    @Test func versionOne() throws {
        let v4 = "PROXY TCP4 192.0.2.7 198.51.100.1 56324 443\r\nGET /"
        guard case .complete(let source, _, let length) = parse(v4) else { Issue.record("not parsed"); return }
        #expect(source?.ipAddress == "192.0.2.7" && source?.port == 56324 && length == v4.utf8.count - 5)
        guard case .complete(_, let destination, _) = parse(v4) else { return }
        #expect(destination?.ipAddress == "198.51.100.1" && destination?.port == 443)
        guard case .complete(let six, _, _) = parse("PROXY TCP6 2001:db8::1 2001:db8::2 1000 80\r\n") else { Issue.record("v6"); return }
        #expect(six?.ipAddress == "2001:db8::1")
        #expect(parse("PROXY UNKNOWN\r\n") == .complete(source: nil, destination: nil, length: 15))
        #expect(parse("PROXY TCP4 192.0.2.7") == .incomplete)
        #expect(parse("PRO") == .incomplete)
        #expect(parse("GET / HTTP/1.1\r\n") == .invalid)
        #expect(parse("PROXY TCP4 300.1.1.1 1.1.1.1 1 2\r\n") == .invalid)
        #expect(parse("PROXY " + String(repeating: "x", count: 120)) == .invalid)
    }

    @Test func versionTwo() throws {
        var header = ProxyProtocolHeader.v2Signature + [0x21, 0x11, 0x00, 0x0C]
        header += [192, 0, 2, 9, 198, 51, 100, 1, 0x1F, 0x90, 0x01, 0xBB]
        guard case .complete(let source, _, let length) = ProxyProtocolHeader.parse(header + Array("GET".utf8)) else {
            Issue.record("not parsed")
            return
        }
        #expect(source?.ipAddress == "192.0.2.9" && source?.port == 8080 && length == 28)
        #expect(ProxyProtocolHeader.parse(Array(header.prefix(20))) == .incomplete)
        var local = ProxyProtocolHeader.v2Signature + [0x20, 0x00, 0x00, 0x00]
        #expect(ProxyProtocolHeader.parse(local) == .complete(source: nil, destination: nil, length: 16))
        local[12] = 0x31
        #expect(ProxyProtocolHeader.parse(local) == .invalid)
    }
}

/// The headers Hasp sends to servers (`send-proxy`, `send-proxy-v2`), read back by the parser
/// that reads clients' headers.
@Suite struct ProxyHeaderEncodingTests {
    @Test func versionOneText() throws {
        let client = try SocketAddress(ipAddress: "192.0.2.7", port: 56324)
        let frontend = try SocketAddress(ipAddress: "198.51.100.1", port: 443)
        #expect(ProxyHeader.encode(.v1, source: client, destination: frontend) == Array("PROXY TCP4 192.0.2.7 198.51.100.1 56324 443\r\n".utf8))
        let six = try SocketAddress(ipAddress: "2001:db8::1", port: 1000)
        let sixFrontend = try SocketAddress(ipAddress: "2001:db8::2", port: 80)
        #expect(ProxyHeader.encode(.v1, source: six, destination: sixFrontend) == Array("PROXY TCP6 2001:db8::1 2001:db8::2 1000 80\r\n".utf8))
        // One IPv4 and one IPv6 address: both as IPv6.
        #expect(ProxyHeader.encode(.v1, source: client, destination: sixFrontend) == Array("PROXY TCP6 ::ffff:192.0.2.7 2001:db8::2 56324 80\r\n".utf8))
        #expect(ProxyHeader.encode(.v1, source: nil, destination: frontend) == Array("PROXY UNKNOWN\r\n".utf8))
    }

    @Test func versionTwoBytes() throws {
        let client = try SocketAddress(ipAddress: "192.0.2.9", port: 8080)
        let frontend = try SocketAddress(ipAddress: "198.51.100.1", port: 443)
        let header = ProxyHeader.encode(.v2, source: client, destination: frontend)
        #expect(header == ProxyProtocolHeader.v2Signature + [0x21, 0x11, 0x00, 0x0C, 192, 0, 2, 9, 198, 51, 100, 1, 0x1F, 0x90, 0x01, 0xBB])
        guard case .complete(let source, _, let length) = ProxyProtocolHeader.parse(header) else { Issue.record("not read back"); return }
        #expect(source == client && length == 28)
        let six = ProxyHeader.encode(.v2, source: try SocketAddress(ipAddress: "2001:db8::1", port: 1), destination: try SocketAddress(ipAddress: "::1", port: 2))
        #expect(six.count == 16 + 36 && six[13] == 0x21 && six[15] == 36)
        guard case .complete(let sixSource, _, _) = ProxyProtocolHeader.parse(six) else { Issue.record("v6 not read back"); return }
        #expect(sixSource?.ipAddress == "2001:db8::1")
        // A check, and a client without an address, say LOCAL.
        #expect(ProxyHeader.encode(.v2, source: client, destination: frontend, local: true) == ProxyProtocolHeader.v2Signature + [0x20, 0x00, 0x00, 0x00])
        #expect(ProxyHeader.encode(.v2, source: nil, destination: frontend) == ProxyProtocolHeader.v2Signature + [0x20, 0x00, 0x00, 0x00])
    }
}
