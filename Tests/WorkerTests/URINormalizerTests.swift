import Testing
@testable import Worker

/// `http-request normalize-uri`: the cases of HAProxy's own regression test for it, with the
/// results haproxy 2.6 gives.
@Suite struct URINormalizerTests {
    func normalized(_ kind: String, _ target: String) -> String? {
        URINormalizer.apply(kind, to: target)
    }

    func normalized(_ kind: String, _ option: String, _ target: String) -> String? {
        URINormalizer.apply(kind, option: option, to: target)
    }

    @Test func dotSegmentsLeaveTheirSlash() {
        #expect(normalized("path-strip-dot", "/.") == "/")
        #expect(normalized("path-strip-dot", "/a/.") == "/a/")
        #expect(normalized("path-strip-dot", "/a/./a") == "/a/a")
        #expect(normalized("path-strip-dot", "/a.") == "/a.")
        #expect(normalized("path-strip-dot", "/a/../") == "/a/../")
        #expect(normalized("path-strip-dot", "/?a=/./") == "/?a=/./")
        #expect(normalized("path-strip-dotdot", "/foo/..") == "/")
        #expect(normalized("path-strip-dotdot", "/foo/bar/../") == "/foo/")
        #expect(normalized("path-strip-dotdot", "/foo/../bar") == "/bar")
        #expect(normalized("path-strip-dotdot", "/foo//../../bar/") == "/bar/")
        // A `..` with nothing before it stays, unless `full`.
        #expect(normalized("path-strip-dotdot", "/foo/../../bar/") == "/../bar/")
        #expect(normalized("path-strip-dotdot", "full", "/foo/../../bar/") == "/bar/")
        #expect(normalized("path-strip-dotdot", "/foo/../?bar=/foo/../") == "/?bar=/foo/../")
        #expect(normalized("path-strip-dotdot", "*") == "*")
    }

    @Test func percentEncodings() {
        #expect(normalized("percent-to-uppercase", "/%aa?a=%aa") == "/%AA?a=%AA")
        #expect(normalized("percent-to-uppercase", "/%zz?a=%zz") == "/%zz?a=%zz")
        #expect(normalized("percent-to-uppercase", "strict", "/%zz?a=%zz") == nil)
        #expect(normalized("percent-decode-unreserved", "/%61?%61=%61") == "/a?a=a")
        #expect(normalized("percent-decode-unreserved", "/%3F?foo=bar") == "/%3F?foo=bar")
        #expect(normalized("percent-decode-unreserved", "/%%36%36") == "/%66")
        #expect(normalized("percent-decode-unreserved", "strict", "/%%36%36") == nil)
    }
}
