import NIOCore
import Testing
@testable import Worker

@Suite struct HeadParserTests {
    func request(_ text: String, limit: Int = 15_360) -> HeadParser.Outcome {
        HeadParser.parseRequest(ByteBuffer(string: text), limit: limit)
    }

    func parsed(_ text: String) throws -> MessageHead {
        guard case .complete(let head, let length) = request(text) else {
            throw ParseFailure(text: text)
        }
        #expect(length <= text.utf8.count)
        return head
    }

    struct ParseFailure: Error { var text: String }

    @Test func parsesAnOrdinaryRequest() throws {
        let head = try parsed("GET /a?b=1 HTTP/1.1\r\nHost: example.com\r\nContent-Length: 5\r\nConnection: keep-alive, X-Hop\r\nX-Hop: 1\r\n\r\nhello")
        #expect(head.method == "GET")
        #expect(head.target == "/a?b=1")
        #expect(head.versionMinor == 1)
        #expect(head.contentLength == 5)
        #expect(head.isKeepAlive)
        #expect(head.connectionNames == ["x-hop"])
        #expect(head.value(named: "HOST") == "example.com")
        #expect(HeadParser.requestFraming(head) == .length(5))
    }

    @Test func headsArriveInPieces() {
        guard case .incomplete = request("GET / HTTP/1.1\r\nHost: x\r\n") else {
            Issue.record("a head without its empty line is incomplete")
            return
        }
        guard case .complete(_, let n) = request("\r\nGET / HTTP/1.1\r\nHost: x\r\n\r\nGET /next") else {
            Issue.record("leading empty lines are skipped")
            return
        }
        #expect(n == 29)
    }

    @Test func http10AndKeepAlive() throws {
        #expect(try !parsed("GET / HTTP/1.0\r\n\r\n").isKeepAlive)
        #expect(try parsed("GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n").isKeepAlive)
        #expect(try !parsed("GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").isKeepAlive)
        #expect(try !parsed("GET / HTTP/1.1\r\nHost: x\r\nConnection: CLOSE\r\n\r\n").isKeepAlive)
        // Headers after the fast-path token are still read (Host here).
        #expect(try !parsed("GET / HTTP/1.1\r\nConnection: close\r\nHost: x\r\n\r\n").isKeepAlive)
        #expect(try !parsed("GET / HTTP/1.1\r\nHost: x\r\nConnection: x, Close\r\n\r\n").isKeepAlive)
        // Near misses of the single-token fast path are names, not keywords.
        #expect(try parsed("GET / HTTP/1.1\r\nHost: x\r\nConnection: closed\r\n\r\n").isKeepAlive)
        #expect(try parsed("GET / HTTP/1.1\r\nHost: x\r\nConnection: keep_alive\r\n\r\n").connectionNames == ["keep_alive"])
        #expect(try parsed("GET / HTTP/1.0\r\nConnection: KEEP-ALIVE\r\n\r\n").isKeepAlive)
    }

    @Test func chunkedRequests() throws {
        let head = try parsed("POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip, chunked\r\n\r\n")
        #expect(HeadParser.requestFraming(head) == .chunked)
    }

    /// Requests HAProxy (or RFC 9112) refuses with 400.
    static let rejected: [String] = [
        "GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 3, 4\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999999999999999999\r\n\r\n",
        "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\n",
        "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked, gzip\r\n\r\n",
        "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n",
        "GET / HTTP/1.1\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: x\r\nBad Header: y\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: x\r\n: empty-name\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: x\r\nX: a\r\n folded\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: x\r\nX: a\rb\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: x\r\nX: a\u{1}b\r\n\r\n",
        "GET / HTTP/2.0\r\nHost: x\r\n\r\n",
        "GET /\r\nHost: x\r\n\r\n",
        "G@T / HTTP/1.1\r\nHost: x\r\n\r\n",
        "GET  / HTTP/1.1\r\nHost: x\r\n\r\n",
        "NOT-HTTP\r\n\r\n",
    ]

    @Test(arguments: 0..<rejected.count)
    func rejectsBadRequests(_ index: Int) {
        guard case .invalid = request(Self.rejected[index]) else {
            Issue.record("accepted \(Self.rejected[index].debugDescription)")
            return
        }
    }

    @Test func oversizeHeadsAreRejected() {
        let big = "GET / HTTP/1.1\r\nHost: x\r\nX: \(String(repeating: "a", count: 2000))\r\n\r\n"
        guard case .invalid = request(big, limit: 1024) else {
            Issue.record("an oversize head must be rejected")
            return
        }
        guard case .invalid = request("GET / HTTP/1.1\r\nX: \(String(repeating: "a", count: 2000))", limit: 1024) else {
            Issue.record("an oversize incomplete head must be rejected without waiting")
            return
        }
    }

    @Test func responses() throws {
        guard case .complete(let head, _) = HeadParser.parseResponse(ByteBuffer(string: "HTTP/1.1 204 No Content\r\n\r\n"), limit: 4096) else {
            Issue.record("valid response")
            return
        }
        #expect(head.status == 204)
        #expect(HeadParser.responseFraming(head, requestMethod: "GET") == .none)
        guard case .complete(let ok, _) = HeadParser.parseResponse(ByteBuffer(string: "HTTP/1.0 200 OK\r\nServer: x\r\n\r\nbody"), limit: 4096) else {
            Issue.record("valid response")
            return
        }
        #expect(HeadParser.responseFraming(ok, requestMethod: "GET") == .untilClose)
        #expect(HeadParser.responseFraming(ok, requestMethod: "HEAD") == .none)
        #expect(!ok.isKeepAlive)
        guard case .invalid = HeadParser.parseResponse(ByteBuffer(string: "HTTP/1.1 2x0 OK\r\n\r\n"), limit: 4096) else {
            Issue.record("bad status code")
            return
        }
    }

    @Test(arguments: ["1 0", "+1", "1,", ",1", "1, 2", "0x1", "1;", ""])
    func contentLengthIsDigitsOrAListOfOneValue(_ value: String) {
        guard case .invalid = request("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: \(value)\r\n\r\n") else {
            Issue.record("Content-Length: \(value.debugDescription) must be refused")
            return
        }
    }

    @Test func aContentLengthListOfOneValueIsThatValue() throws {
        let list = try parsed("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 7 ,7,\t7\r\n\r\n")
        #expect(list.contentLength == 7 && list.contentLengthNeedsRewrite)
        let twice = try parsed("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 7\r\ncontent-length: 7\r\n\r\n")
        #expect(twice.contentLength == 7 && twice.contentLengthNeedsRewrite)
        let plain = try parsed("POST / HTTP/1.1\r\nHost: x\r\nContent-Length:  7 \r\n\r\n")
        #expect(plain.contentLength == 7 && !plain.contentLengthNeedsRewrite)
    }

    @Test(arguments: [
        ("http://a.example/x", "a.example", true), ("http://a.example/x", "b.example", false),
        ("http://A.EXAMPLE:80/x", "a.example", true), ("http://a.example/x", "a.example:80", true),
        ("http://a.example:8080/x", "a.example", false), ("https://a.example/", "a.example:443", true),
        ("https://a.example:80/", "a.example", false), ("http://u:p@a.example?q", "a.example", true),
        ("http://[::1]:80/", "[::1]", true), ("http://[::1]/", "[::2]", false), ("/x", "anything", true),
        ("http://a.example/x", "a.example.", false), ("ftp://a.example:21/", "a.example", false),
    ])
    func anAbsoluteTargetMatchesItsHost(_ target: String, _ host: String, _ same: Bool) {
        let outcome = request("GET \(target) HTTP/1.1\r\nHost: \(host)\r\n\r\n")
        if case .complete = outcome { #expect(same, "\(target) / \(host)") } else { #expect(!same, "\(target) / \(host)") }
    }

    @Test func connectTargetsMatchTheirHost() {
        guard case .complete = request("CONNECT a.example:443 HTTP/1.1\r\nHost: A.example:443\r\n\r\n"),
              case .invalid = request("CONNECT a.example:443 HTTP/1.1\r\nHost: b.example:443\r\n\r\n") else {
            Issue.record("CONNECT authority against Host")
            return
        }
    }

    @Test func headerLinesAreCountedAgainstMaxhdr() {
        let head = "GET / HTTP/1.1\r\nHost: x\r\n" + (1..<10).map { "X-\($0): v\r\n" }.joined() + "\r\n"
        guard case .complete = HeadParser.parseRequest(ByteBuffer(string: head), limit: 15_360, maxHeaders: 11),
              case .invalid = HeadParser.parseRequest(ByteBuffer(string: head), limit: 15_360, maxHeaders: 10),
              case .invalid = HeadParser.parseResponse(ByteBuffer(string: "HTTP/1.1 200 OK\r\nA: 1\r\nB: 2\r\n\r\n"), limit: 4096, maxHeaders: 2) else {
            Issue.record("10 header lines pass maxhdr 11 and fail maxhdr 10; 2 response lines fail maxhdr 2")
            return
        }
    }

    @Test(arguments: ["GET /\r\n", "GET / HTTP/2.0\r\n", "GET\r\n", "GET  / HTTP/1.1\r\n", "G\u{1}T / HTTP/1.1\r\n"])
    func aBadRequestLineIsRefusedBeforeTheHeadEnds(_ line: String) {
        guard case .invalid = request(line + "Host: x\r\n") else {
            Issue.record("\(line.debugDescription) must be refused as soon as the line is whole")
            return
        }
    }
}

@Suite struct BodyReaderTests {
    func drain(_ reader: inout BodyReader, _ pieces: [String]) throws -> String {
        var out = ""
        for piece in pieces {
            var buffer = ByteBuffer(string: piece)
            while buffer.readableBytes > 0, !reader.isDone {
                guard let slice = try reader.consume(&buffer) else { break }
                out += String(buffer: slice)
            }
        }
        return out
    }

    @Test func contentLengthStopsAtTheEnd() throws {
        var reader = BodyReader(.length(5))
        var buffer = ByteBuffer(string: "helloGET /next")
        let slice = try reader.consume(&buffer)
        #expect(slice.map { String(buffer: $0) } == "hello")
        #expect(reader.isDone)
        #expect(String(buffer: buffer) == "GET /next")
    }

    @Test func chunkedPassesThroughVerbatimAcrossSplits() throws {
        let wire = "5\r\nhello\r\n6;ext=1\r\n world\r\n0\r\nX-Trailer: t\r\n\r\n"
        // Every split point must give the same bytes and the same end.
        for cut in 0...wire.utf8.count {
            var reader = BodyReader(.chunked)
            let a = String(wire.prefix(cut))
            let b = String(wire.dropFirst(cut))
            let out = try drain(&reader, [a, b])
            #expect(out == wire, "cut at \(cut)")
            #expect(reader.isDone)
        }
    }

    @Test func dechunkingKeepsOnlyTheData() throws {
        var reader = BodyReader(.chunked, dechunk: true)
        let out = try drain(&reader, ["5\r\nhel", "lo\r\n3\r\nabc\r\n0\r\n\r\n"])
        #expect(out == "helloabc")
        #expect(reader.isDone)
    }

    @Test func chunkSizeAndTrailerLinesAreBounded() throws {
        var long = BodyReader(.chunked, lineLimit: 64)
        #expect(throws: BodyReader.Failure.self) { _ = try drain(&long, ["1;" + String(repeating: "e", count: 100) + "\r\nz\r\n0\r\n\r\n"]) }
        var fits = BodyReader(.chunked, lineLimit: 64)
        _ = try drain(&fits, ["1;" + String(repeating: "e", count: 50), "\r\nz\r\n0\r\n\r\n"])
        #expect(fits.isDone)
        var trailer = BodyReader(.chunked, lineLimit: 64)
        #expect(throws: BodyReader.Failure.self) { _ = try drain(&trailer, ["0\r\nX-T: " + String(repeating: "t", count: 100) + "\r\n\r\n"]) }
    }

    static let badChunks = ["zz\r\n", "5\nhello\r\n", "5\r\nhelloXX", "\r\n", "12345678901234567\r\n", "0\r\n\n"]

    @Test(arguments: badChunks)
    func badChunkFramingIsAnError(_ wire: String) {
        var reader = BodyReader(.chunked)
        #expect(throws: BodyReader.Failure.self) { _ = try drain(&reader, [wire]) }
    }
}
