import NIOCore
import Testing
@testable import Worker

/// The message model: reading and editing a parsed head, and what the HTTP/1 serializer writes
/// for an edited head compared with an untouched one.
@Suite struct MessageHeadTests {
    func request(_ text: String) throws -> MessageHead {
        guard case .complete(let head, _) = HeadParser.parseRequest(ByteBuffer(string: text), limit: 16_384) else {
            throw ParseFailure()
        }
        return head
    }

    struct ParseFailure: Error {}

    func serialized(_ head: MessageHead) -> String {
        String(buffer: H1Serializer.requestHead(head, connection: .none, forwardedFor: nil, allocator: ByteBufferAllocator()))
    }

    static let original = "GET /p HTTP/1.1\r\nHost: example\r\nAccept: a\r\nX-Trace: 1\r\nX-Trace: 2\r\nConnection: keep-alive, x-hop\r\nX-Hop: gone\r\n\r\n"

    @Test func lookupIsCaseInsensitiveAndListsEveryLine() throws {
        let head = try request(Self.original)
        #expect(head.value(named: "host") == "example")
        #expect(head.value(named: "X-TRACE") == "1")
        #expect(head.values(named: "x-trace") == ["1", "2"])
        #expect(head.value(named: "missing") == nil)
        #expect(!head.isEdited)
    }

    /// Names compare as bytes, ASCII letters without regard to case, whether the strings are
    /// contiguous (native) or not (a Substring's, bridged text...).
    @Test func headerNamesCompareWithoutRegardToCase() {
        #expect(HTTPField.sameName("X-Client-IP", "x-client-ip"))
        #expect(HTTPField.sameName("", ""))
        #expect(!HTTPField.sameName("X-Client-IP", "x-client-iq"))
        #expect(!HTTPField.sameName("Host", "Hos"))
        #expect(!HTTPField.sameName("[", "{"))  // 0x5B and 0x7B differ by the case bit, but are not letters
        let long = String(repeating: "Abc-", count: 20)
        #expect(HTTPField.sameName(long, long.uppercased()))
        #expect(HTTPField.sameName(String("zz-Tier-zz".dropFirst(3).dropLast(3)), "tIER"))
    }

    @Test func anUntouchedHeadIsWrittenFromItsBytesWithoutHopByHopHeaders() throws {
        let head = try request(Self.original)
        #expect(serialized(head) == "GET /p HTTP/1.1\r\nHost: example\r\nAccept: a\r\nX-Trace: 1\r\nX-Trace: 2\r\n\r\n")
    }

    /// Lines already in `name: value` CRLF form are copied in runs; every other form is written
    /// field by field, normalised; the order of the lines never changes.
    @Test func fieldsKeepTheirOrderWhetherCopiedInRunsOrRewritten() throws {
        let wire = "GET /p HTTP/1.1\r\nHost: example\r\nA: 1\r\nB:2\r\nC: 3\r\nD:   4  \r\nConnection: x-hop\r\n"
            + "E: 5\nX-Hop: gone\r\nE2: 5\r\nContent-Length: 0, 0\r\nF: 6\r\nG: \r\nH: 8\r\n\r\n"
        let head = try request(wire)
        #expect(serialized(head) == "GET /p HTTP/1.1\r\nHost: example\r\nA: 1\r\nB: 2\r\nC: 3\r\nD: 4\r\nE: 5\r\n"
            + "E2: 5\r\nContent-Length: 0\r\nF: 6\r\nG: \r\nH: 8\r\n\r\n")
    }

    @Test func addSetRemoveAndReplaceEditTheHead() throws {
        var head = try request(Self.original)
        head.addHeader("X-Added", "yes")
        head.setHeader("x-trace", "3")
        head.removeHeader("accept")
        head.replaceHeaderValues("host", { $0.uppercased() })
        #expect(head.isEdited)
        #expect(head.values(named: "X-Trace") == ["3"])
        #expect(head.value(named: "accept") == nil)
        // Hop-by-hop headers (and the names Connection lists) still never reach the server.
        #expect(serialized(head) == "GET /p HTTP/1.1\r\nHost: EXAMPLE\r\nX-Added: yes\r\nx-trace: 3\r\n\r\n")
    }

    /// What rules read in place (`anyValueInPlace`, ACL shortcuts) is what `hdr` and `fhdr`
    /// make of `allValues`: every line in order, cut at commas and trimmed for `hdr`; on a
    /// parsed head, an overlay of edits, an owned list, and with more than 64 lines.
    @Test func valuesReadInPlaceAreTheFetchValues() throws {
        func inPlace(_ head: inout MessageHead, _ name: String, split: Bool) -> [String] {
            var out: [String] = []
            _ = head.anyValueInPlace(named: name, split: split) { out.append(String(decoding: $0, as: UTF8.self)); return false }
            return out
        }
        func expected(_ head: MessageHead, _ name: String, split: Bool) -> [String] {
            head.allValues(lowercasedName: name).flatMap { line -> [String] in
                guard split, line.contains(",") else { return [line] }
                return line.split(separator: ",", omittingEmptySubsequences: false).map {
                    String($0.drop { $0 == " " || $0 == "\t" }.reversed().drop { $0 == " " || $0 == "\t" }.reversed())
                }
            }
        }
        var lines = "GET /p HTTP/1.1\r\nHost: h\r\nX-List: a, b ,,c\r\nx-list: d\r\nCookie: a=1; b=2\r\nE: \r\n"
        // Names whose first byte and length give the same bit as present ones (`hosu`, `x-lisu`).
        for i in 0..<70 { lines += "Pad-\(i): \(i)\r\n" }
        var parsed = try request(lines + "\r\n")
        var overlaid = parsed
        overlaid.setHeader("X-List", "z,y")
        overlaid.addHeader("X-Added", "1, 2")
        overlaid.removeHeader("e")
        var owned = parsed
        owned.replaceHeaderValues("x-list") { $0 + ",q" }
        #expect(owned.editedFields != nil)
        let names = ["host", "x-list", "cookie", "e", "x-added", "hosu", "x-lisu", "absent", "pad-69", "pad-0"]
        for (label, head) in [("parsed", parsed), ("overlaid", overlaid), ("owned", owned)] {
            var head = head
            for name in names {
                for split in [true, false] {
                    #expect(inPlace(&head, name, split: split) == expected(head, name, split: split), "\(label) \(name) \(split)")
                }
            }
        }
        #expect(inPlace(&parsed, "x-list", split: true) == ["a", "b", "", "c", "d"])
        #expect(inPlace(&overlaid, "x-list", split: true) == ["z", "y"])
        #expect(inPlace(&overlaid, "X-ADDED", split: false) == ["1, 2"])
        // The first value that satisfies the test stops the walk.
        var seen = 0
        #expect(parsed.anyValueInPlace(named: "x-list", split: true) { seen += 1; return $0.count == 1 && $0[0] == UInt8(ascii: "b") })
        #expect(seen == 2)
    }

    /// A value a rule writes is sent as written and read back without the blanks around it, as
    /// a parsed one is (haproxy 2.6: `set-header X "a "` sends "a ", `res.fhdr(x)` reads "a";
    /// reg-tests url_dec and http_after_response).
    @Test func ruleValuesAreReadTrimmedAndSentAsWritten() throws {
        var head = try request(Self.original)
        head.setHeader("X-Set", " \tsl1: ")
        head.addHeader("X-Add", "  two words  ")
        head.addHeader("X-Empty", "  ")
        #expect(head.allValues(lowercasedName: "x-set") == ["sl1:"])
        #expect(head.allValues(lowercasedName: "x-add") == ["two words"])
        #expect(head.allValues(lowercasedName: "x-empty") == [""])
        var seen: [String] = []
        _ = head.anyValueInPlace(named: "x-add", split: false) { seen.append(String(decoding: $0, as: UTF8.self)); return false }
        #expect(seen == ["two words"])
        #expect(serialized(head).contains("\r\nX-Set:  \tsl1: \r\nX-Add:   two words  \r\nX-Empty:   \r\n"))
        head.replaceHeaderValues("host") { $0 + " " }
        #expect(head.allValues(lowercasedName: "x-add") == ["two words"])
    }

    /// Lines rules add are kept as the bytes they go out as: written in the order they came,
    /// framing and hop-by-hop ones left out, replaced and removed by name, found by name (also
    /// when another added name shares its bit in the name mask: `X-Client-IP`, `X-Remove-Me`).
    @Test func addedLinesKeepTheirOrderAndLeaveOutWhatIsNeverForwarded() throws {
        var head = try request("GET /p HTTP/1.1\r\nHost: h\r\n\r\n")
        head.addHeader("X-Client-IP", "10.0.0.1")
        head.addHeader("X-Tier", "gold")
        #expect(serialized(head) == "GET /p HTTP/1.1\r\nHost: h\r\nX-Client-IP: 10.0.0.1\r\nX-Tier: gold\r\n\r\n")
        #expect(head.value(named: "x-remove-me") == nil && !head.hasHeader(named: "X-Remove-Me"))
        #expect(head.value(named: "x-client-ip") == "10.0.0.1" && head.hasHeader(named: "X-TIER"))

        head.addHeader("Connection", "close")
        head.addHeader("Content-Length", "9")
        head.addHeader("X-Tier", "silver")
        #expect(head.allValues(lowercasedName: "x-tier") == ["gold", "silver"])
        #expect(serialized(head) == "GET /p HTTP/1.1\r\nHost: h\r\nX-Client-IP: 10.0.0.1\r\nX-Tier: gold\r\nX-Tier: silver\r\n\r\n")

        head.setHeader("x-tier", "bronze")
        head.removeHeader("X-CLIENT-IP")
        #expect(head.values(named: "X-Tier") == ["bronze"] && !head.hasHeader(named: "x-client-ip"))
        #expect(serialized(head) == "GET /p HTTP/1.1\r\nHost: h\r\nx-tier: bronze\r\n\r\n")
        // Turned into an owned list, the added lines come along in order.
        head.replaceHeaderValues("host") { $0 + "2" }
        #expect(head.headerFields.map { "\($0.name)=\($0.value)" } == ["Host=h2", "Connection=close", "Content-Length=9", "x-tier=bronze"])
    }

    @Test func removingAnAbsentHeaderLeavesTheHeadUntouched() throws {
        var head = try request(Self.original)
        head.removeHeader("absent")
        head.replaceHeaderValues("absent", { _ in "x" })
        #expect(!head.isEdited)
    }

    @Test func framingSurvivesEdits() throws {
        var head = try request("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 3, 3\r\n\r\n")
        head.addHeader("X-A", "1")
        // The body keeps the framing it arrived with: one plain Content-Length.
        #expect(serialized(head) == "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\nX-A: 1\r\n\r\n")
        #expect(HeadParser.requestFraming(head) == .length(3))
    }

    /// The status line keeps its reason whatever line end it came with, has none when none came,
    /// and takes the one `set-status` gives.
    @Test(arguments: [
        ("HTTP/1.1 200 OK\r\nA: 1\r\n\r\n", "HTTP/1.1 200 OK\r\nA: 1\r\n\r\n"),
        ("HTTP/1.1 404\r\n\r\n", "HTTP/1.1 404\r\n\r\n"),
        ("HTTP/1.0 503 Service  Unavailable\nA: 1\n\n", "HTTP/1.1 503 Service  Unavailable\r\nA: 1\r\n\r\n"),
        ("HTTP/1.1 302 \r\n\r\n", "HTTP/1.1 302\r\n\r\n"),
    ])
    func theStatusLineKeepsItsReason(_ wire: String, _ expected: String) throws {
        guard case .complete(var head, _) = HeadParser.parseResponse(ByteBuffer(string: wire), limit: 16_384) else {
            throw ParseFailure()
        }
        let allocator = ByteBufferAllocator()
        #expect(String(buffer: H1Serializer.responseHead(head, clientMinor: 1, connection: .none, dechunk: false, allocator: allocator)) == expected)
        head.setStatus(201, reason: "Made")
        #expect(String(buffer: H1Serializer.responseHead(head, clientMinor: 1, connection: .none, dechunk: false, allocator: allocator))
            .hasPrefix("HTTP/1.1 201 Made\r\n"))
        head.setStatus(204, reason: nil)
        #expect(String(buffer: H1Serializer.responseHead(head, clientMinor: 1, connection: .none, dechunk: false, allocator: allocator))
            .hasPrefix("HTTP/1.1 204 No Content\r\n"))
    }

    @Test func theResponseHeadFollowsTheClientVersionAndConnectionDecision() throws {
        guard case .complete(var head, _) = HeadParser.parseResponse(ByteBuffer(string: "HTTP/1.1 200 OK\r\nServer: s\r\nTransfer-Encoding: chunked\r\n\r\n"), limit: 16_384) else {
            throw ParseFailure()
        }
        let allocator = ByteBufferAllocator()
        #expect(String(buffer: H1Serializer.responseHead(head, clientMinor: 0, connection: .close, dechunk: true, allocator: allocator))
                == "HTTP/1.0 200 OK\r\nServer: s\r\nconnection: close\r\n\r\n")
        head.setHeader("Server", "hasp")
        #expect(String(buffer: H1Serializer.responseHead(head, clientMinor: 1, connection: .none, dechunk: false, allocator: allocator))
                == "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nServer: hasp\r\n\r\n")
    }

    @Test func editsThatWouldSplitTheMessageAreNotMade() throws {
        var head = try request(Self.original)
        head.setHeader("X-A", "v\r\nX-Injected: 1")
        head.addHeader("X-B", "v\nx")
        head.replaceHeaderValues("accept", { _ in "a\r\n" })
        #expect(!head.isEdited)
        head.setRequestLinePart(.path, "/a b")
        head.setRequestLinePart(.uri, "/a\r\nX: 1")
        #expect(head.target == "/p")
        head.setRequestLinePart(.path, "/q")
        #expect(head.target == "/q")
    }

    @Test func anUnparsableErrorfileBecomesTheBuiltIn500() {
        let answer = LocalAnswer.raw(Array("HTTP/1.1 nonsense\r\n\r\n".utf8), cause: ("P", "R"))
        #expect(answer.head.status == 500 && answer.body.isEmpty)
    }
}
