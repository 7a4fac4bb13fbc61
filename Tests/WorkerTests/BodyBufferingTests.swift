import Foundation
import NIOCore
import NIOEmbedded
import Shared
import Testing
@testable import Worker

/// `option http-buffer-request` and `wait-for-body`: the body is read before rules and
/// routing, whatever the packets it comes in; a body that does not come in time gets 408 (or,
/// for `wait-for-body`, the request goes on with what came).
@Suite struct BodyBufferingTests {
    static func config(_ frontend: String) -> String {
        """
        defaults
            mode http
            timeout connect 4s
            timeout client 30s
            timeout server 10s
            timeout http-request 5s
        frontend fe
            bind 127.0.0.1:8080
        \(frontend)
            default_backend be
        backend be
            server s1 127.0.0.1:9000
        """
    }

    static let ok = "HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok"

    @Test func aBodyInPiecesIsWholeBeforeTheRulesRun() throws {
        let proxy = try EmbeddedProxy(Self.config("""
            option http-buffer-request
            http-request deny if { req.body -m sub secret }
            http-request set-header X-Len %[req.body_len]
        """))
        let client = try proxy.client()
        try client.send("POST /a HTTP/1.1\r\nhost: x\r\ncontent-length: 10\r\n\r\nharml")
        // Nothing goes to a server while the body is incomplete.
        #expect(proxy.connector.attempts == 0)
        try client.send("ess!")
        #expect(proxy.connector.attempts == 0)
        try client.send("!")
        let forwarded = try proxy.server.written()
        #expect(forwarded.contains("x-len: 10\r\n") && forwarded.hasSuffix("\r\n\r\nharmless!!"))
        try proxy.server.send(BodyBufferingTests.ok)
        #expect(try client.written() == Self.ok)

        let second = try proxy.client()
        try second.send("POST /b HTTP/1.1\r\nhost: x\r\ncontent-length: 9\r\n\r\nsec")
        try second.send("ret!!!")
        #expect(try second.written().hasPrefix("HTTP/1.1 403 Forbidden\r\n"))
    }

    @Test func aChunkedBodyIsBufferedAndDechunkedForTheRules() throws {
        let proxy = try EmbeddedProxy(Self.config("""
            option http-buffer-request
            http-request set-header X-Body %[req.body]
        """))
        let client = try proxy.client()
        try client.send("POST /a HTTP/1.1\r\nhost: x\r\ntransfer-encoding: chunked\r\n\r\n4\r\nwiki\r\n")
        #expect(proxy.connector.attempts == 0)
        try client.send("5\r\npedia\r\n0\r\n")
        #expect(proxy.connector.attempts == 0)
        try client.send("\r\n")
        let forwarded = try proxy.server.written()
        // The rules saw the payload; the server gets the body in its original framing.
        #expect(forwarded.contains("x-body: wikipedia\r\n"))
        #expect(forwarded.hasSuffix("\r\n\r\n4\r\nwiki\r\n5\r\npedia\r\n0\r\n\r\n"))
    }

    @Test func aBodyThatDoesNotComeGets408() throws {
        let proxy = try EmbeddedProxy(Self.config("    option http-buffer-request"))
        let client = try proxy.client()
        try client.send("POST /a HTTP/1.1\r\nhost: x\r\ncontent-length: 10\r\n\r\nabc")
        proxy.advance(ms: 4_999)
        #expect(try client.written().isEmpty)
        proxy.advance(ms: 1)
        #expect(try client.written().hasPrefix("HTTP/1.1 408 Request Time-out\r\n"))
        #expect(proxy.connector.attempts == 0)
    }

    @Test func waitForBodyGoesOnWithWhatCameAtItsDeadline() throws {
        let proxy = try EmbeddedProxy(Self.config("""
            http-request wait-for-body time 1s
            http-request set-header X-Len %[req.body_len]
        """))
        let client = try proxy.client()
        try client.send("POST /a HTTP/1.1\r\nhost: x\r\ncontent-length: 10\r\n\r\nabc")
        proxy.advance(ms: 999)
        #expect(proxy.connector.attempts == 0)
        proxy.advance(ms: 1)
        let forwarded = try proxy.server.written()
        #expect(forwarded.contains("x-len: 3\r\n") && forwarded.hasSuffix("\r\n\r\nabc"))
        try client.send("defghij")
        #expect(try proxy.server.written() == "defghij")
    }

    @Test func withoutTheOptionTheBodyStreams() throws {
        let proxy = try EmbeddedProxy(Self.config(""))
        let client = try proxy.client()
        try client.send("POST /a HTTP/1.1\r\nhost: x\r\ncontent-length: 10\r\n\r\nabc")
        #expect(proxy.connector.attempts == 1)
        #expect(try proxy.server.written().hasSuffix("\r\n\r\nabc"))
    }
}

/// What rules read of a request is cached for the rest of its rules (`StreamContext`); an edit
/// drops exactly what it changed: the values of the header it edits (any spelling of its
/// name), every header for a pattern `del-header`, the request line for a request-line edit.
@Suite struct RuleReadCacheTests {
    @Test func editsDropWhatTheyChangeAndNothingElse() throws {
        let proxy = try EmbeddedProxy(BodyBufferingTests.config("""
            http-request set-header R-Before %[req.hdr(x-a)]
            http-request set-header x-A two
            http-request set-header R-After %[req.hdr(x-a)]
            http-request set-header R-Path %[path]
            http-request add-header X-B b1
            http-request set-header R-Path-Kept %[path]
            http-request set-header R-B-Count %[req.hdr_cnt(x-b)]
            http-request set-path /q
            http-request set-header R-Path-New %[path]
            http-request del-header X-A
            http-request set-header R-A-Count %[req.hdr_cnt(x-a)]
            http-request del-header x-b -m beg
            http-request set-header R-B-Gone %[req.hdr_cnt(x-b)]
            http-request set-header R-Host %[req.hdr(host)]
        """))
        let client = try proxy.client()
        try client.send("GET /p HTTP/1.1\r\nhost: h1\r\nX-A: one\r\nX-B: b0\r\n\r\n")
        let forwarded = try proxy.server.written()
        #expect(forwarded.hasPrefix("GET /q HTTP/1.1\r\n"), "\(forwarded)")
        for line in ["r-before: one", "r-after: two", "r-path: /p", "r-path-kept: /p", "r-b-count: 2", "r-path-new: /q",
                     "r-a-count: 0", "r-b-gone: 0", "r-host: h1"] {
            #expect(forwarded.lowercased().contains("\r\n\(line)\r\n"), "\(line) in \(forwarded)")
        }
        #expect(!forwarded.lowercased().contains("\r\nx-a:") && !forwarded.lowercased().contains("\r\nx-b:"), "\(forwarded)")
    }

    /// `hdr`, `req.hdr` and `req.fhdr` read the request's values in place: the last value for a
    /// sample, every value (each through the converters) for an ACL, lines rules added included,
    /// and an occurrence from the list as before.
    @Test func headerFetchesReadInPlaceGiveTheFetchValues() throws {
        let proxy = try EmbeddedProxy(BodyBufferingTests.config("""
            acl has_b hdr(x-list),upper -m str B
            acl has_whole req.fhdr(x-list) -m str "a, B ,"
            acl added_seen hdr(x-added) -m str two
            http-request add-header X-Added "one, two"
            http-request set-header R-Last %[hdr(x-list)]
            http-request set-header R-Last-Line %[req.fhdr(x-list)]
            http-request set-header R-Second %[hdr(x-list,2)]
            http-request set-header R-Host %[hdr(host),lower]
            http-request set-header R-Absent "<%[hdr(x-absent)]>"
            http-request set-header R-Has-B yes if has_b
            http-request set-header R-Whole yes if has_whole
            http-request set-header R-Added yes if added_seen
        """))
        let client = try proxy.client()
        try client.send("GET /p HTTP/1.1\r\nHost: H1\r\nX-List: a, B ,\r\nx-list:  c \r\n\r\n")
        let forwarded = try proxy.server.written().lowercased()
        for line in ["r-last: c", "r-last-line: c", "r-second: b", "r-host: h1", "r-absent: <>", "r-has-b: yes", "r-whole: yes",
                     "r-added: yes"] {
            #expect(forwarded.contains("\r\n\(line)\r\n"), "\(line) in \(forwarded)")
        }
    }

    /// Path ACLs read the path's bytes kept for the request: they see a path set by an earlier
    /// rule, a path longer than the first room made for it, and the next request's own path.
    @Test func pathACLsSeeThePathTheRulesLeft() throws {
        let long = "/" + String(repeating: "segment/", count: 20) + "end"
        let proxy = try EmbeddedProxy(BodyBufferingTests.config("""
            acl to_q path /q
            acl long path_end /end
            acl api path_beg /api
            http-request set-header R-Before %[bool(1)] if to_q
            http-request set-path /q if { path /p }
            http-request set-header R-After q if to_q
            http-request set-header R-Long yes if long
            http-request set-header R-Api yes if api
        """))
        let client = try proxy.client()
        try client.send("GET /p HTTP/1.1\r\nhost: h1\r\n\r\n")
        var forwarded = try proxy.server.written().lowercased()
        #expect(forwarded.hasPrefix("get /q http/1.1\r\n") && forwarded.contains("\r\nr-after: q\r\n"), "\(forwarded)")
        #expect(!forwarded.contains("r-before") && !forwarded.contains("r-long") && !forwarded.contains("r-api"), "\(forwarded)")
        try proxy.server.send(BodyBufferingTests.ok)
        _ = try client.written()
        try client.send("GET \(long) HTTP/1.1\r\nhost: h1\r\n\r\n")
        forwarded = try proxy.server.written().lowercased()
        #expect(forwarded.contains("\r\nr-long: yes\r\n") && !forwarded.contains("r-after") && !forwarded.contains("r-api"), "\(forwarded)")
        try proxy.server.send(BodyBufferingTests.ok)
        _ = try client.written()
        try client.send("GET /api/x HTTP/1.1\r\nhost: h1\r\n\r\n")
        forwarded = try proxy.server.written().lowercased()
        #expect(forwarded.contains("\r\nr-api: yes\r\n") && !forwarded.contains("r-long") && !forwarded.contains("r-after"), "\(forwarded)")
    }
}
