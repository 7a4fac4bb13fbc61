import NIOCore
import Testing
@testable import Worker

@Suite struct ProxyProtocolTests {
    func parse(_ text: String) -> ProxyProtocolHeader { ProxyProtocolHeader.parse(Array(text.utf8)) }

    @Test func versionOne() throws {
        let v4 = "PROXY TCP4 192.0.2.7 198.51.100.1 56324 443\r\nGET /"
        guard case .complete(let source, let length) = parse(v4) else { Issue.record("not parsed"); return }
        #expect(source?.ipAddress == "192.0.2.7" && source?.port == 56324 && length == v4.utf8.count - 5)
        guard case .complete(let six, _) = parse("PROXY TCP6 2001:db8::1 2001:db8::2 1000 80\r\n") else { Issue.record("v6"); return }
        #expect(six?.ipAddress == "2001:db8::1")
        #expect(parse("PROXY UNKNOWN\r\n") == .complete(source: nil, length: 15))
        #expect(parse("PROXY TCP4 192.0.2.7") == .incomplete)
        #expect(parse("PRO") == .incomplete)
        #expect(parse("GET / HTTP/1.1\r\n") == .invalid)
        #expect(parse("PROXY TCP4 300.1.1.1 1.1.1.1 1 2\r\n") == .invalid)
        #expect(parse("PROXY " + String(repeating: "x", count: 120)) == .invalid)
    }

    @Test func versionTwo() throws {
        var header = ProxyProtocolHeader.v2Signature + [0x21, 0x11, 0x00, 0x0C]
        header += [192, 0, 2, 9, 198, 51, 100, 1, 0x1F, 0x90, 0x01, 0xBB]
        guard case .complete(let source, let length) = ProxyProtocolHeader.parse(header + Array("GET".utf8)) else {
            Issue.record("not parsed")
            return
        }
        #expect(source?.ipAddress == "192.0.2.9" && source?.port == 8080 && length == 28)
        #expect(ProxyProtocolHeader.parse(Array(header.prefix(20))) == .incomplete)
        var local = ProxyProtocolHeader.v2Signature + [0x20, 0x00, 0x00, 0x00]
        #expect(ProxyProtocolHeader.parse(local) == .complete(source: nil, length: 16))
        local[12] = 0x31
        #expect(ProxyProtocolHeader.parse(local) == .invalid)
    }
}
