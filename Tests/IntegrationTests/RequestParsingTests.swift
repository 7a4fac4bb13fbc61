import Foundation
import Synchronization
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// A backend that records every byte it receives, and answers `200 ok` to each complete
/// request (head, then a Content-Length body).
final class RecordingBackend: @unchecked Sendable {
    final class Received: Sendable {
        let bytes = Mutex<[UInt8]>([])
    }
    private let received = Received()
    private var server: RawServer!

    init() throws {
        let received = self.received
        server = try RawServer { fd in
            var pending: [UInt8] = []
            var buffer = [UInt8](repeating: 0, count: 65536)
            while true {
                let n = recv(fd, &buffer, buffer.count, 0)
                if n <= 0 { return }
                received.bytes.withLock { $0.append(contentsOf: buffer[0..<n]) }
                pending.append(contentsOf: buffer[0..<n])
                while let end = pending.firstRange(of: Array("\r\n\r\n".utf8)) {
                    let head = String(decoding: pending[..<end.lowerBound], as: UTF8.self).lowercased()
                    let length = head.split(separator: "\r\n").first { $0.hasPrefix("content-length:") }
                        .flatMap { Int($0.dropFirst(15).trimmingCharacters(in: .whitespaces)) } ?? 0
                    guard pending.count >= end.upperBound + length else { break }
                    pending.removeFirst(end.upperBound + length)
                    try? sendAll(fd, Array("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok".utf8))
                }
            }
        }
    }

    var port: Int { server.port }
    var text: String { String(decoding: received.bytes.withLock { $0 }, as: UTF8.self) }
    func reset() { received.bytes.withLock { $0 = [] } }
}

/// What a client saw: the bytes, and how the connection ended.
struct ClientOutcome {
    var answer: String
    /// The connection ended with a reset rather than an orderly close.
    var reset: Bool
    var seconds: Double
}

/// Sends `bytes` on a new connection and reads until the proxy closes (or 8 s pass).
func exchangeRaw(port: Int, _ bytes: [UInt8]) throws -> ClientOutcome {
    let client = try RawClient(port: port, timeout: 8)
    let start = Date()
    try? client.send(bytes)
    var all: [UInt8] = []
    var buffer = [UInt8](repeating: 0, count: 65536)
    var reset = false
    while true {
        let n = recv(client.fd, &buffer, buffer.count, 0)
        if n < 0 { reset = errno == ECONNRESET; break }
        if n == 0 { break }
        all.append(contentsOf: buffer[0..<n])
    }
    return ClientOutcome(answer: String(decoding: all, as: UTF8.self), reset: reset, seconds: Date().timeIntervalSince(start))
}

/// HTTP/1 request parsing: the smuggling hole, the limits, and a close without a reset.
/// Each case states the exact bytes, what the client gets and what the backend receives; the
/// expectations are Debian's haproxy 2.6's answers to the same bytes.
@Suite(.serialized) struct RequestParsingTests {
    static func config(port: Int, backend: Int, global: String = "") -> String {
        """
        global
            nbthread 1
        \(global)
        defaults
            mode http
            timeout connect 2s
            timeout client 5s
            timeout server 5s
            timeout http-request 5s
        frontend fe
            bind 127.0.0.1:\(port)
            default_backend be
        backend be
            server s1 127.0.0.1:\(backend)
        """
    }

    /// Runs each request against one hasp and checks the answer and what the backend got (the
    /// client's `Connection: close` stays on its side: the server connection is kept alive).
    func check(_ cases: [(request: String, refused: Bool, forwarded: String?)], global: String = "") throws {
        let backend = try RecordingBackend()
        let port = try Ports.free()
        let hasp = try Hasp(config: Self.config(port: port, backend: backend.port, global: global), waitFor: [port])
        defer { hasp.stop() }
        for (request, refused, forwarded) in cases {
            backend.reset()
            let outcome = try exchangeRaw(port: port, Array(request.utf8))
            let label = request.prefix(80).debugDescription
            if refused {
                #expect(outcome.answer == badRequest400, "\(label)")
                #expect(!outcome.reset, "\(label): the 400 must end with a close, not a reset")
                #expect(outcome.seconds < 2, "\(label): answered at once")
                #expect(backend.text.isEmpty, "\(label): forwarded \(backend.text.prefix(80).debugDescription)")
            } else {
                #expect(outcome.answer.hasPrefix("HTTP/1.1 200 OK\r\n"), "\(label): \(outcome.answer.prefix(60).debugDescription)")
                if let forwarded { #expect(backend.text == forwarded, "\(label)") }
            }
        }
    }

    @Test func contentLengthIsDigitsOrAListOfTheSameValue() throws {
        try check([
            // Read as 10 before: the backend got a malformed request and the client two answers.
            ("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1 0\r\n\r\n0123456789GET /two HTTP/1.1\r\nHost: x\r\n\r\n", true, nil),
            ("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: +1\r\n\r\nz", true, nil),
            ("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1,\r\n\r\nz", true, nil),
            ("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1, 2\r\n\r\nzz", true, nil),
            // A list of one value travels as that value.
            ("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1 , 1\r\nConnection: close\r\n\r\nz", false,
             "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\n\r\nz"),
            ("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 1\r\nConnection: close\r\n\r\nz", false,
             "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\n\r\nz"),
        ])
    }

    @Test func anAbsoluteTargetNamesTheHostOfItsHostHeader() throws {
        try check([
            ("GET http://a.example/x HTTP/1.1\r\nHost: b.example\r\n\r\n", true, nil),
            ("GET http://a.example:8080/x HTTP/1.1\r\nHost: a.example\r\n\r\n", true, nil),
            ("GET http://a.example/x HTTP/1.1\r\nHost: a.example.\r\n\r\n", true, nil),
            ("CONNECT a.example:443 HTTP/1.1\r\nHost: b.example:443\r\n\r\n", true, nil),
            // Case, the scheme's default port and user information aside, they are the same.
            ("GET http://A.example:80/x HTTP/1.1\r\nHost: a.EXAMPLE\r\nConnection: close\r\n\r\n", false,
             "GET http://A.example:80/x HTTP/1.1\r\nHost: a.EXAMPLE\r\n\r\n"),
            ("GET https://a.example/x HTTP/1.1\r\nHost: a.example:443\r\nConnection: close\r\n\r\n", false, nil),
            ("GET http://u@a.example/x HTTP/1.1\r\nHost: a.example\r\nConnection: close\r\n\r\n", false, nil),
            ("GET http://[::1]:80/x HTTP/1.1\r\nHost: [::1]\r\nConnection: close\r\n\r\n", false, nil),
        ])
    }

    static func withHeaders(_ count: Int) -> String {
        "GET / HTTP/1.1\r\nHost: x\r\n" + (1..<count).map { "X-H\($0): v\r\n" }.joined() + "Connection: close\r\n\r\n"
    }

    @Test func theNumberOfHeaderLinesIsBoundedByTuneHttpMaxhdr() throws {
        // Host, the X-H lines and Connection: `count + 1` header lines.
        try check([(Self.withHeaders(99), false, nil), (Self.withHeaders(100), true, nil), (Self.withHeaders(1_000), true, nil)])
        try check([(Self.withHeaders(8), false, nil), (Self.withHeaders(9), true, nil)], global: "    tune.http.maxhdr 10")
    }

    @Test func anOversizedHeadGetsA400AndAnOrderlyClose() throws {
        try check([
            ("GET /" + String(repeating: "a", count: 200_000) + " HTTP/1.1\r\nHost: x\r\n\r\n", true, nil),
            ("GET / HTTP/1.1\r\nHost: x\r\nX-A: " + String(repeating: "a", count: 60_000) + "\r\n\r\n", true, nil),
        ])
    }

    @Test func anHTTP09RequestLineIsRefusedAtOnce() throws {
        try check([("GET /\r\n", true, nil), ("GET / HTTP/2.0\r\n", true, nil), ("GET\r\n", true, nil)])
    }

    @Test func chunkSizeLinesAreBounded() throws {
        let backend = try RecordingBackend()
        let port = try Ports.free()
        let hasp = try Hasp(config: Self.config(port: port, backend: backend.port), waitFor: [port])
        defer { hasp.stop() }
        let head = "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
        let long = try exchangeRaw(port: port, Array((head + "1;" + String(repeating: "e", count: 65_536) + "\r\nz\r\n0\r\n\r\n").utf8))
        #expect(long.answer == badRequest400)
        #expect(!long.reset)
        #expect(!backend.text.contains("eeeeeeeeee"), "the extension was forwarded")
        // An extension that fits in a buffer still passes, as in HAProxy.
        backend.reset()
        let body = "1;" + String(repeating: "e", count: 1_000) + "\r\nz\r\n0\r\n\r\n"
        let short = try exchangeRaw(port: port, Array((head.replacingOccurrences(of: "\r\n\r\n", with: "\r\nConnection: close\r\n\r\n") + body).utf8))
        #expect(short.answer.hasPrefix("HTTP/1.1 200 OK\r\n"))
        #expect(backend.text.hasSuffix(body))
    }
}
