import Foundation
import Shared
import Testing

/// A `SampleContext` whose every field a test sets by hand.
final class FakeSampleContext: SampleContext {
    var clientAddress: SampleValue? = .ipv4(0x0a00_0001)
    var clientPort: Int? = 40_000
    var localAddress: SampleValue? = .ipv4(0x7f00_0001)
    var localPort: Int? = 8080
    var frontTLS: TLSSessionFacts? = nil
    var backTLS: TLSSessionFacts? = nil
    var frontendName = "fe"
    var backendName: String? = "be"
    var serverName: String? = nil
    var figures: [ProxyFigure: Int64] = [:]
    func proxyFigure(_ figure: ProxyFigure, proxy: String?, server: String?) -> Int64? { figures[figure] }
    var requestMethod: String? = "GET"
    var requestTarget: String? = "/static/img.png?a=1&b=two"
    var requestVersion: String? = "1.1"
    var requestPath: String? { requestTarget.flatMap { URLParts.path($0) }.map(String.init) }
    var requestHeaderLines: [(name: String, value: String)] = [
        ("Host", "www.example.com:8080"), ("X-Forwarded-For", "1.1.1.1, 2.2.2.2"), ("X-Forwarded-For", "3.3.3.3"),
        ("Cookie", "a=1; sid=xyz"), ("Content-Length", "12"),
    ]
    func headerValues(_ name: String, response: Bool) -> [String] {
        (response ? responseHeaderLines : requestHeaderLines).filter { $0.name.lowercased() == name }.map(\.value)
    }
    /// Whether ACLs may read header values in place (as the worker's context does), or must
    /// take the fetch's samples.
    var readsInPlace = false
    func anyRequestHeaderValue(named bytes: UnsafeBufferPointer<UInt8>, split: Bool, _ body: (UnsafeBufferPointer<UInt8>) -> Bool) -> Bool? {
        guard readsInPlace else { return nil }
        let name = String(decoding: bytes, as: UTF8.self).lowercased()
        for line in headerValues(name, response: false) {
            let parts = split && line.contains(",")
                ? line.split(separator: ",", omittingEmptySubsequences: false).map { String($0.trimmingBlanks()) } : [line]
            for var part in parts where part.withUTF8({ body($0) }) { return true }
        }
        return false
    }
    var requestBody: [UInt8]? = nil
    var requestPayload: [UInt8]? = nil
    func capturedRequestHeader(_ index: Int) -> String? { nil }
    func capturedResponseHeader(_ index: Int) -> String? { nil }
    var responseStatus: Int? = nil
    var responseHeaderLines: [(name: String, value: String)] = []
    var variables: [VariableName: SampleValue] = [:]
    func variable(_ name: VariableName) -> SampleValue? { variables[name] }
    func setVariable(_ name: VariableName, _ value: SampleValue?) { variables[name] = value }
    var userlists: [String: Userlist] = [:]
    func userlist(named: String) -> Userlist? { userlists[named] }
    var epochSeconds: Int64 = 1_700_000_000
    func random(below: UInt64) -> UInt64 { 0 }
}

@Suite struct SampleExpressionTests {
    let context = RuleCompilationContext()

    func value(_ text: String, _ c: FakeSampleContext = FakeSampleContext()) throws -> SampleValue? {
        try SampleExpressionParser.parse(text, context: context).evaluate(c)
    }

    @Test func fetchesOfTheRequest() throws {
        #expect(try value("path") == .string("/static/img.png"))
        #expect(try value("query") == .string("a=1&b=two"))
        #expect(try value("url_param(b)") == .string("two"))
        #expect(try value("url_param(zz)") == nil)
        #expect(try value("method") == .string("GET"))
        #expect(try value("req.ver") == .string("1.1"))
        #expect(try value("base") == .string("www.example.com:8080/static/img.png"))
        // `hdr` splits at commas and takes the last value; `fhdr` keeps whole lines.
        #expect(try value("hdr(x-forwarded-for)") == .string("3.3.3.3"))
        #expect(try value("hdr(x-forwarded-for,1)") == .string("1.1.1.1"))
        #expect(try value("hdr(x-forwarded-for,-2)") == .string("2.2.2.2"))
        #expect(try value("fhdr(x-forwarded-for,1)") == .string("1.1.1.1, 2.2.2.2"))
        #expect(try value("hdr_cnt(x-forwarded-for)") == .int(3))
        #expect(try value("req.fhdr_cnt(x-forwarded-for)") == .int(2))
        #expect(try value("hdr_val(content-length)") == .int(12))
        #expect(try value("req.cook(sid)") == .string("xyz"))
        #expect(try value("req.cook_cnt") == .int(2))
        #expect(try value("src") == .ipv4(0x0a00_0001))
        #expect(try value("src,ipmask(8)")?.asString == "10.0.0.0")
        #expect(try value("dst_port") == .int(8080))
        #expect(try value("fe_name") == .string("fe"))
        #expect(try value("hdr(host),host_only") == .string("www.example.com"))
        #expect(try value("hdr(host),port_only") == .int(8080))
        #expect(try value("str(abc),upper,length") == .int(3))
        #expect(try value("int(5),add(3),mul(2)") == .int(16))
        #expect(try value("always_true") == .bool(true))
        #expect(try value("date(10)") == .int(1_700_000_010))
    }

    @Test func absoluteTargets() throws {
        let c = FakeSampleContext()
        c.requestTarget = "http://example.org:81/p/q?x=1"
        #expect(try value("path", c) == .string("/p/q"))
        #expect(try value("pathq", c) == .string("/p/q?x=1"))
        #expect(try value("url_port", c) == .int(81))
        c.requestTarget = "http://example.org"
        #expect(try value("path", c) == .string(""))
    }

    /// Values produced by Debian's haproxy 2.6 (`http-after-response set-header` of each).
    @Test func digestEncodingAndStringBuildingConverters() throws {
        #expect(try value("str(abc),crc32c") == .int(910_901_175))
        #expect(try value("str(abc),crc32c(1)") == .int(1_285_784_220))
        #expect(try value("str(123456789),crc32c") == .int(3_808_858_755))
        #expect(try value("bin(01020304050607),be2dec(:,2)") == .string("258:772:1286:7"))
        #expect(try value("bin(01020304050607),be2dec(-,2,1)") == .string("258-772-1286"))
        #expect(try value("bin(01020304050607),be2dec(,2,1)") == .string("2587721286"))
        #expect(try value("bin(7f000001),be2dec(.,1)") == .string("127.0.0.1"))
        #expect(try value("bin(01020304050607),be2hex") == .string("01020304050607"))
        #expect(try value("bin(01020304050607),be2hex(:,2)") == .string("0102:0304:0506:07"))
        #expect(try value("bin(01020304050607),be2hex(--,2,1)") == .string("0102--0304--0506"))
        #expect(try value("bin(0102030405060708),be2hex(,3,1)") == .string("010203040506"))
        #expect(try value("str(abc),sha1,hex") == .string("A9993E364706816ABA3E25717850C26C9CD0D89D"))
        #expect(try value("str(abc),sha2,hex") == .string("BA7816BF8F01CFEA414140DE5DAE2223B00361A396177A9CB410FF61F20015AD"))
        #expect(try value("str(abc),sha2(224),hex") == .string("23097D223405D8228642A477BDA255B32AADBCE4BDA0B3F7E36C9DA7"))
        #expect(try value("str(abc),digest(md5),hex") == .string("900150983CD24FB0D6963F7D28E17F72"))
        #expect(try value("str(abc),hmac(sha256,a2V5),hex")
            == .string("9C196E32DC0175F86F4B1CB89289D6619DE6BEE699E4C378E68309ED97A1A6AB"))
        // A binary sample is encoded as its bytes, not as text.
        #expect(try value("str(abc),sha1,base64") == .string("qZk+NkcGgWq6PiVxeFDCbJzQ2J0="))
        #expect(try value("str(abc),ub64enc") == .string("YWJj"))
        #expect(try value("str(>>>?),ub64enc") == .string("Pj4-Pw"))
        #expect(try value("str(Pj4-Pw),ub64dec") == .binary(Array(">>>?".utf8)))
        #expect(try value("str(P),ub64dec") == nil)
        #expect(try value("int(1),iif(yes,no)") == .string("yes"))
        #expect(try value("int(0),iif(yes,no)") == .string("no"))
        #expect(try value("str(),iif(yes,no)") == nil)
        let c = FakeSampleContext()
        c.variables[VariableName(scope: .proc, name: "a")] = .string("A1")
        c.variables[VariableName(scope: .txn, name: "key")] = .string("a2V5")
        c.variables[VariableName(scope: .txn, name: "same")] = .string("abc")
        #expect(try value("str(x),add_item(',',,sfx)", c) == .string("x,sfx"))
        #expect(try value("str(),add_item(',',,sfx)", c) == .string("sfx"))
        #expect(try value("str(x),add_item(',',proc.none)", c) == .string("x"))
        #expect(try value("str(ab),add_item(-,proc.a)", c) == .string("ab-A1"))
        #expect(try value("str(abc),hmac(sha256,txn.key),hex", c)
            == .string("9C196E32DC0175F86F4B1CB89289D6619DE6BEE699E4C378E68309ED97A1A6AB"))
        #expect(try value("str(abc),secure_memcmp(txn.same)", c) == .bool(true))
        #expect(try value("str(abd),secure_memcmp(txn.same)", c) == .bool(false))
        #expect(try value("str(abcd),secure_memcmp(txn.same)", c) == .bool(false))
        // Without a name, the first cookie; with one, its last occurrence.
        #expect(try value("req.cook", c) == .string("1"))
        c.requestHeaderLines.append(("Cookie", "sid=last"))
        #expect(try value("req.cook(sid)", c) == .string("last"))
        // A backslash stays before a character it does not escape (`\d` in a regex).
        #expect(try value("str(a12b),regsub(\\d+,N)") == .string("aNb"))
        #expect(try value("str(a b),regsub(\\ ,_)") == .string("a_b"))
    }

    @Test func badArgumentsGetHAProxysMessages() {
        func failure(_ text: String) -> String {
            do { _ = try SampleExpressionParser.parse(text, context: context); return "" } catch { return error.message }
        }
        #expect(failure("str(a),be2dec(:)") == "invalid args in converter 'be2dec' : chunk_size out of [1..8] range (0).")
        #expect(failure("str(a),be2dec(:,2,3)") == "invalid args in converter 'be2dec' : Unsupported truncate value (3).")
        #expect(failure("str(a),be2hex(:,0)") == "invalid args in converter 'be2hex' : chunk_size needs to be positive (0).")
        #expect(failure("str(a),sha2(100)") == "invalid args in converter 'sha2' : Unsupported number of bits: '100'.")
        #expect(failure("str(a),digest(nope)")
            == "invalid args in converter 'digest' : algorithm must be a valid OpenSSL message digest name..")
        #expect(failure("str(a),hmac(sha1,abc)")
            == "invalid args in converter 'hmac' : failed to parse key : argument needs to be base64 encoded, and can either be a string or a variable.")
        #expect(failure("str(a),add_item(',')") == "invalid arg 2 in converter 'add_item' : missing arguments (got 1/2), type 'string' expected")
        #expect(failure("str(a),add_item(',',bad)") == "invalid args in converter 'add_item' : failed to register variable name 'bad'.")
        #expect(failure("str(a),add_item(',',,)") == "invalid args in converter 'add_item' : one of the optional arguments has to be nonempty.")
        #expect(failure("str(a),secure_memcmp()") == "invalid args in converter 'secure_memcmp' : missing variable name.")
        #expect(failure("bin(0)") == "invalid args in fetch method 'bin' : an even number of hex digit is expected.")
        #expect(failure("bin(zz)") == "invalid args in fetch method 'bin' : an hex digit is expected (found 'z').")
        #expect(failure("req.hdr") == "")
        #expect(failure("str") == "fetch method 'str' : missing arguments (got 0/1), type 'string' expected")
    }

    @Test func convertersMatchHAProxy() throws {
        // Values produced by Debian's haproxy 2.6 for the same expressions.
        #expect(try value("str(abc),crc32") == .int(891_568_578))
        #expect(try value("str(abc),crc32(1)") == .int(930_845_320))
        #expect(try value("str(abc),djb2") == .int(193_485_963))
        #expect(try value("str(abc),sdbm") == .int(807_794_786))
        #expect(try value("str(abc),sdbm(1)") == .int(659_243_622))
        #expect(try value("str(abc),wt6") == .int(2_483_038_440))
        #expect(try value("str(hello world),wt6") == .int(1_866_899_626))
        #expect(try value("str(abc),xxh3") == .int(8_696_274_497_037_089_104))
        #expect(try value("str(abc),xxh3(1)") == .int(7_729_416_884_403_528_232))
        #expect(try value("str(abc),xxh32") == .int(852_579_327))
        #expect(try value("str(abc),xxh32(1)") == .int(2_856_167_679))
        #expect(try value("str(abc),xxh64") == .int(4_952_883_123_889_572_249))
        #expect(try value("str(abc),xxh64(1)") == .int(-4_708_009_277_469_325_048))
        #expect(try value("str(hello world),xxh64(-1)") == .int(-3_166_369_512_892_959_104))
        #expect(try value("int(42),xxh32") == .int(1_913_414_649))
        #expect(try value("str(aZ),hex") == .string("615A"))
        #expect(try value("str(hello),base64") == .string("aGVsbG8="))
        #expect(try value("str(aGVsbG8=),b64dec") == .binary(Array("hello".utf8)))
        #expect(try value("str(a:b:c),field(2,:)") == .string("b"))
        // Counts, negative indexes and the span of the input they cover (haproxy 2.6's
        // reg-test converters_ipmask_concat_strcmp_field_word).
        for (expression, expected) in [
            ("field(5,_)", "f5"), ("field(2,_,0)", "f2_f3__f5"), ("field(2,_,2)", "f2_f3"), ("field(-2,_,3)", "f2_f3_"),
            ("field(-3,_,0)", "f1_f2_f3"), ("word(4,_)", "f5"), ("word(2,_,0)", "f2_f3__f5"), ("word(3,_,2)", "f3__f5"),
            ("word(-2,_,3)", "f1_f2_f3"), ("word(-3,_,0)", "f1_f2"),
        ] {
            #expect(try value("str(f1_f2_f3__f5),\(expression)") == .string(expected), "\(expression)")
        }
        #expect(try value("str(a/b:c),field(1,:/,2)") == .string("a/b"))
        #expect(try value("str(a:b:c),field(-1,:)") == .string("c"))
        #expect(try value("str(a:b:c),field(2,:,0)") == .string("b:c"))
        #expect(try value("str(/a//b/c),word(2,/)") == .string("b"))
        #expect(try value("str(/foo),field(3,/)") == nil)
        #expect(try value("str(/foo),word(2,/)") == nil)
        #expect(try value("str(/foo//bar),field(3,/)") == .string(""))
        #expect(try value("str(aaa-bbb),regsub(a,X,g)") == .string("XXX-bbb"))
        #expect(try value("str(aaa-bbb),regsub(a,X)") == .string("Xaa-bbb"))
        #expect(try value("str(192.168.1.77),ipmask(24)")?.asString == "192.168.1.0")
        #expect(try value("str(2001:db8::1),ipmask(24,64)")?.asString == "2001:db8::")
        // Masks as well as prefix lengths, applied bit by bit (values from haproxy 2.6's
        // reg-test converters_ipmask_concat_strcmp_field_word).
        #expect(try value("str(192.168.1.77),ipmask(255.255.0.0)")?.asString == "192.168.0.0")
        #expect(try value("str(2001:db8:1:2:3:4:5:6),ipmask(24,ffff:ffff:ffff:ffff:0:ffff:ffff:0)")?.asString == "2001:db8:1:2:0:4:5:0")
        #expect(try value("str(2001:db8::1),ipmask(24,ffff::)")?.asString == "2001::")
        // An IPv4-mapped address is masked as IPv4; another IPv6 one without a mask6 has no sample.
        #expect(try value("str(::ffff:192.168.1.77),ipmask(24)")?.asString == "192.168.1.0")
        #expect(try value("str(2001:db8::1),ipmask(24)") == nil)
        // Empty parentheses are one empty argument; url_enc takes HAProxy's one encoding.
        #expect(try value("str()") == .string(""))
        #expect(try value("str(a b),url_enc(query)") == .string("a%20b"))
        #expect(try value("str(a%20b%2Fc),url_dec") == .string("a b/c"))
        // `+` is a space in the query only, unless the argument says so for the path too.
        #expect(try value("str(/bla+%20?foo=bar%2B42+42%20),url_dec") == .string("/bla+ ?foo=bar+42 42 "))
        #expect(try value("str(/bla+%20?foo=bar%2B42+42%20),url_dec(1)") == .string("/bla  ?foo=bar+42 42 "))
        #expect(try value("int(7),div(2)") == .int(3))
        #expect(try value("int(7),div(0)") == .int(Int64.max))
        #expect(try value("int(7),mod(3)") == .int(1))
        #expect(try value("int(4),neg") == .int(-4))
        #expect(try value("int(6),and(3)") == .int(2))
        #expect(try value("int(6),or(1),xor(2)") == .int(5))
        #expect(try value("int(3),bool") == .bool(true))
        #expect(try value("int(3),not") == .bool(false))
        #expect(try value("int(3),odd") == .bool(true))
        #expect(try value("int(3),even") == .bool(false))
        #expect(try value("str(xxaxx),ltrim(x)") == .string("axx"))
        #expect(try value("str(xxaxx),rtrim(x)") == .string("xxa"))
        #expect(try value("str(hello),bytes(1,3)") == .binary(Array("ell".utf8)))
        #expect(try value("str(a\\\"b/c),json") == .string("a\\\"b\\/c"))
    }

    @Test func variablesAndSetVarConverter() throws {
        let c = FakeSampleContext()
        _ = try value("str(hello),set-var(txn.greeting)", c)
        #expect(try value("var(txn.greeting)", c) == .string("hello"))
        #expect(try value("var(txn.none,fallback)", c) == .string("fallback"))
        c.variables[try VariableName.parse("txn.n")] = .int(4)
        #expect(try value("int(10),sub(txn.n)", c) == .int(6))
        #expect(try value("str(x),concat(<,txn.greeting,>)", c) == .string("x<hello>"))
    }

    @Test func extremeValuesNeverTrap() throws {
        #expect(try value("int(-9223372036854775808),div(-1)") == .int(Int64.max))
        #expect(try value("int(-9223372036854775808),mod(-1)") == .int(0))
        // Saturated, as haproxy 2.6 answers.
        #expect(try value("int(9223372036854775807),add(1)") == .int(Int64.max))
        #expect(try value("int(-9223372036854775808),sub(1)") == .int(Int64.min))
        #expect(try value("int(4611686018427387904),mul(4)") == .int(Int64.max))
        #expect(try value("int(-9223372036854775808),neg") == .int(Int64.max))
        #expect(try value("str(hello),bytes(2,-1)") == nil)
        #expect(try value("str(hello),bytes(9)") == nil)
        #expect(try value("date(9223372036854775807,us)") != nil)
        // Dates moved past the largest integer (seen trapping in the fuzz test).
        #expect(try value("int(9223372036854775807),http_date(10)") != nil)
        #expect(try value("int(-9223372036854775808),utime(%Y,-10)") != nil)
        #expect(try value("int(9223372036854775807),ltime(%Y,10)") != nil)
        let c = FakeSampleContext()
        c.requestPayload = [1, 2, 3]
        #expect(try value("req.payload(1,-5)", c) == nil)
        #expect(try value("req.payload(2,9223372036854775807)", c) == nil)
        #expect(try ACLCompiler.compile(["int(5)", "lt", "-9223372036854775808"], context: RuleCompilationContext()) { _ in }.matches(c) == false)
        #expect(try ACLCompiler.compile(["int(5)", "gt", "9223372036854775807"], context: RuleCompilationContext()) { _ in }.matches(c) == false)
    }

    @Test func aMissingSampleGivesNoSampleNotACrash() throws {
        let c = FakeSampleContext()
        c.requestHeaderLines = []
        #expect(try value("hdr(host),lower,field(1,:)", c) == nil)
        #expect(try value("req.cook(sid),url_dec,length", c) == nil)
        c.requestTarget = nil
        #expect(try value("path,lower", c) == nil)
    }

    @Test func maskAndChoiceArgumentsAreCheckedAtLoad() {
        for (text, message) in [
            ("src,ipmask(24,zz)", "invalid arg 2 in converter 'ipmask' : failed to parse 'zz' as type 'IPv6 mask' at position 2."),
            ("src,ipmask(24,129)", "invalid arg 2 in converter 'ipmask' : failed to parse '129' as type 'IPv6 mask' at position 2."),
            ("src,ipmask(33)", "invalid arg 1 in converter 'ipmask' : failed to parse '33' as type 'IPv4 mask' at position 1."),
            ("str(a),url_enc(foo)", "invalid args in converter 'url_enc' : Unexpected encode type. Allowed value is 'query'."),
        ] {
            do throws(SampleExpressionParser.Failure) {
                _ = try SampleExpressionParser.parse(text, context: context)
                Issue.record("\(text) was accepted")
            } catch {
                #expect(error.message == message, "\(text)")
            }
        }
    }

    @Test func badExpressionsAreRefusedWithHAProxysWords() {
        #expect(throws: SampleExpressionParser.Failure.self) { try SampleExpressionParser.parse("pth", context: context) }
        do {
            _ = try SampleExpressionParser.parse("src,foo", context: context)
        } catch {
            #expect(error.message == "unknown converter 'foo'.")
        }
        do {
            _ = try SampleExpressionParser.parse("hdr(host", context: context)
        } catch {
            #expect(error.message.contains("missing closing ')'"))
        }
        do {
            _ = try SampleExpressionParser.parse("str(a),regsub((,x)", context: context)
        } catch {
            #expect(error.message.contains("invalid regex '('"))
        }
        do {
            _ = try SampleExpressionParser.parse("var(foo)", context: context)
        } catch {
            #expect(error.message.contains("invalid variable name 'foo'"))
        }
    }
}

@Suite struct MatchMethodTests {
    func acl(_ words: [String], files: PatternFileStore = PatternFileStore()) throws(ACLCompiler.Failure) -> ACLTest {
        try ACLCompiler.compile(words, context: RuleCompilationContext(patternFiles: files)) { _ in }
    }

    @Test func stringMethods() throws {
        let c = FakeSampleContext()
        #expect(try acl(["path_beg", "/static", "/img"]).matches(c))
        #expect(try !acl(["path_beg", "/api"]).matches(c))
        #expect(try acl(["path_end", ".png", ".jpg"]).matches(c))
        #expect(try acl(["path_sub", "img"]).matches(c))
        #expect(try acl(["path_dir", "static"]).matches(c))
        #expect(try !acl(["path_dir", "stat"]).matches(c))
        #expect(try acl(["hdr_dom(host)", "example"]).matches(c))
        #expect(try !acl(["hdr_dom(host)", "exam"]).matches(c))
        #expect(try acl(["path_reg", "^/static/.*\\.png$"]).matches(c))
        #expect(try acl(["path", "/static/img.png"]).matches(c))
        #expect(try !acl(["path", "/STATIC/img.png"]).matches(c))
        #expect(try acl(["path", "-i", "/STATIC/img.png"]).matches(c))
        #expect(try acl(["path_beg", "-i", "/STAT"]).matches(c))
        #expect(try acl(["path_len", "15"]).matches(c))
        #expect(try acl(["hdr(host)", "-m", "end", ":8080"]).matches(c))
        #expect(try acl(["hdr(host),lower", "-m", "beg", "www."]).matches(c))
        // Every occurrence is tried: the first X-Forwarded-For value matches.
        #expect(try acl(["hdr(x-forwarded-for)", "1.1.1.1"]).matches(c))
        #expect(try acl(["hdr_ip(x-forwarded-for)", "2.2.0.0/16"]).matches(c))
    }

    @Test func integersAndOperators() throws {
        let c = FakeSampleContext()
        #expect(try acl(["hdr_cnt(x-forwarded-for)", "gt", "2"]).matches(c))
        #expect(try !acl(["hdr_cnt(x-forwarded-for)", "lt", "3"]).matches(c))
        #expect(try acl(["hdr_cnt(x-forwarded-for)", "1:3"]).matches(c))
        #expect(try acl(["hdr_cnt(x-forwarded-for)", "3:"]).matches(c))
        #expect(try !acl(["hdr_cnt(x-forwarded-for)", ":2"]).matches(c))
        #expect(try acl(["dst_port", "80", "8080"]).matches(c))
        #expect(throws: ACLCompiler.Failure.self) { try acl(["dst_port", "abc"]) }
    }

    @Test func addressesAndNetworks() throws {
        let c = FakeSampleContext()
        #expect(try acl(["src", "10.0.0.0/8"]).matches(c))
        #expect(try acl(["src", "10.0.0.1"]).matches(c))
        #expect(try acl(["src", "192.168.0.0/255.255.0.0", "10.0.0.0/255.0.0.0"]).matches(c))
        #expect(try !acl(["src", "11.0.0.0/8", "::1"]).matches(c))
        c.clientAddress = .ipv6(IPAddressText.parseIPv6("2001:db8::5")!)
        #expect(try acl(["src", "2001:db8::/32"]).matches(c))
        do throws(ACLCompiler.Failure) {
            _ = try acl(["src", "1.2.3.4/33"])
            Issue.record("a bad network was accepted")
        } catch {
            #expect(error.message == "'1.2.3.4/33' is not a valid IPv4 or IPv6 address.")
        }
    }

    @Test func foundBoolAndMissingPatterns() throws {
        let c = FakeSampleContext()
        #expect(try acl(["req.cook(sid)", "-m", "found"]).matches(c))
        #expect(try !acl(["req.cook(nope)", "-m", "found"]).matches(c))
        #expect(try acl(["always_true"]).matches(c))
        #expect(try !acl(["always_false"]).matches(c))
        var warned = ""
        let never = try ACLCompiler.compile(["path_beg"], context: RuleCompilationContext()) { warned = $0 }
        #expect(!never.matches(c))
        #expect(warned.contains("no pattern to match against were provided"))
    }

    @Test func regexErrorsNameThePatternAndPCRE2sReason() {
        do throws(ACLCompiler.Failure) {
            _ = try acl(["path_reg", "(abc"])
            Issue.record("a bad regex was accepted")
        } catch {
            #expect(error.message == "regex '(abc' is invalid (error=missing closing parenthesis, erroffset=4).")
        }
    }

    @Test func patternFilesAndTheirLookupStructures() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("hasp-acl-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let list = dir.appendingPathComponent("deny.lst").path
        var lines = "# blocked clients\n\n"
        for i in 0..<10_000 { lines += "10.\(i / 256 % 256).\(i % 256).0/24\n" }
        try lines.write(toFile: list, atomically: true, encoding: .utf8)
        let c = FakeSampleContext()
        c.clientAddress = .ipv4(IPAddressText.parseIPv4("10.3.7.200")!)
        #expect(try acl(["src", "-f", list]).matches(c))
        c.clientAddress = .ipv4(IPAddressText.parseIPv4("11.3.7.200")!)
        #expect(try !acl(["src", "-f", list]).matches(c))
        do throws(ACLCompiler.Failure) {
            _ = try acl(["src", "-f", dir.appendingPathComponent("missing").path])
            Issue.record("a missing file was accepted")
        } catch {
            #expect(error.message.hasPrefix("failed to open pattern file <"))
        }
    }
}

@Suite struct MapTests {
    func map(_ converter: String, _ input: String, lines: String) throws -> SampleValue? {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("hasp-map-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let path = dir.appendingPathComponent("m.map").path
        try lines.write(toFile: path, atomically: true, encoding: .utf8)
        let expression = try SampleExpressionParser.parse("str(\(input)),\(converter.replacingOccurrences(of: "FILE", with: path))",
                                                          context: RuleCompilationContext())
        return expression.evaluate(FakeSampleContext())
    }

    @Test func eachMatchKind() throws {
        let hosts = "www.example.com web\napi.example.com   api  pool\n# comment\n"
        #expect(try map("map(FILE)", "api.example.com", lines: hosts) == .string("api  pool"))
        #expect(try map("map(FILE,dflt)", "nope", lines: hosts) == .string("dflt"))
        #expect(try map("map_str(FILE)", "nope", lines: hosts) == nil)
        // `beg` answers with the longest prefix.
        let prefixes = "/ root\n/api v1\n/api/v2 v2\n"
        #expect(try map("map_beg(FILE)", "/api/v2/users", lines: prefixes) == .string("v2"))
        #expect(try map("map_beg(FILE)", "/api/v1/users", lines: prefixes) == .string("v1"))
        #expect(try map("map_beg(FILE)", "/x", lines: prefixes) == .string("root"))
        #expect(try map("map_sub(FILE)", "/a/admin/b", lines: "admin yes\n") == .string("yes"))
        #expect(try map("map_end(FILE)", "photo.JPG", lines: ".jpg img\n.JPG IMG\n") == .string("IMG"))
        #expect(try map("map_dir(FILE)", "/a/static/b", lines: "static s\n") == .string("s"))
        #expect(try map("map_dom(FILE)", "cdn.example.com", lines: "example e\n") == .string("e"))
        #expect(try map("map_reg(FILE)", "/user/42", lines: "^/user/[0-9]+$ users\n") == .string("users"))
        // map_regm: the value names the match's groups.
        #expect(try map("map_regm(FILE)", "/user/42/x", lines: "^/user/([0-9]+)/(.*)$ u=\\1,rest=\\2\n") == .string("u=42,rest=x"))
        #expect(try map("map_regm(FILE,none)", "/nope", lines: "^/user/([0-9]+) \\1\n") == .string("none"))
        #expect(try map("map_ip(FILE)", "10.1.2.3", lines: "10.0.0.0/8 big\n10.1.0.0/16 small\n") == .string("small"))
        #expect(try map("map_str_int(FILE)", "a", lines: "a 42\n") == .int(42))
        #expect(try map("map_ip_int(FILE,0)", "192.0.2.1", lines: "10.0.0.0/8 1\n") == .int(0))
        #expect(try map("map_int(FILE)", "7", lines: "5:9 mid\n") == .string("mid"))
    }

    @Test func aLargeMapIsAHashLookup() throws {
        var lines = ""
        for i in 0..<10_000 { lines += "host\(i).example.com backend\(i % 7)\n" }
        #expect(try map("map(FILE)", "host9999.example.com", lines: lines) == .string("backend3"))
        #expect(try map("map(FILE)", "host0.example.com", lines: lines) == .string("backend0"))
        // Misses: a prefix, a longer key, a short one.
        #expect(try map("map_str(FILE)", "host9999.example.co", lines: lines) == nil)
        #expect(try map("map_str(FILE)", "host9999.example.com.", lines: lines) == nil)
        #expect(try map("map_str(FILE,none)", "h", lines: lines) == .string("none"))
        // Every key is found after the table grew, and a repeated key answers its first line.
        for i in stride(from: 0, to: 10_000, by: 997) {
            #expect(try map("map(FILE)", "host\(i).example.com", lines: lines) == .string("backend\(i % 7)"))
        }
        #expect(try map("map(FILE)", "k", lines: "k first\nk second\n") == .string("first"))
    }

    /// Keys compare as bytes, as in HAProxy: a precomposed "é" and "e" with a combining accent
    /// are different keys (Swift's `String ==` would call them equal).
    @Test func keysCompareAsBytes() throws {
        #expect(try map("map_str(FILE)", "caf\u{E9}", lines: "caf\u{E9} one\n") == .string("one"))
        #expect(try map("map_str(FILE)", "cafe\u{301}", lines: "caf\u{E9} one\n") == nil)
        let c = FakeSampleContext()
        c.requestHeaderLines = [("Host", "cafe\u{301}")]
        #expect(try !MatchMethodTests().acl(["hdr(host)", "caf\u{E9}"]).matches(c))
        #expect(try MatchMethodTests().acl(["hdr(host)", "-i", "CAFE\u{301}"]).matches(c))
    }
}

/// ACL tests on a header, the path, the query or a cookie read their subject in place when the
/// context can; the answers are the fetch's, whatever the method, case rule and values.
@Suite struct ACLShortcutTests {
    @Test func inPlaceAnswersAreTheFetchAnswers() throws {
        let headerSets: [[(name: String, value: String)]] = [
            [("Host", "WWW.Example.com"), ("X-List", "a, b ,,c"), ("x-list", "d"), ("Cookie", "sid=xyz; a=1;  sid = no ; b"),
             ("cookie", "sid=two"), ("User-Agent", "Mozilla/5.0 (iPhone) Mobile")],
            [("Host", "x"), ("Content-Type", "application/json; charset=utf-8")],
            [],
        ]
        let targets = ["/static/img.png?a=1&b=two", "/api/v1/x", "/", "/items/0123abcd-0000?" + String(repeating: "q", count: 1_100)]
        let acls: [[String]] = [
            ["hdr(host)", "-i", "www.example.com"], ["hdr(host)", "www.example.com"], ["hdr_beg(host)", "-i", "www."],
            ["hdr_end(host)", ".com"], ["hdr_sub(user-agent)", "-i", "iphone", "android"], ["hdr_reg(host)", "^w+\\."],
            ["hdr_dom(host)", "example"], ["hdr_len(host)", "15"], ["hdr(x-list)", "b"], ["hdr(x-list)", ""],
            ["fhdr(x-list)", "a, b ,,c"], ["req.fhdr(x-list)", "b"], ["req.hdr(x-list)", "-m", "found"], ["hdr(absent)", "-m", "found"],
            ["hdr_sub(content-type)", "-i", "JSON"], ["req.hdr(authorization)", "-m", "found"],
            ["path_beg", "/static", "/api"], ["path_end", ".png"], ["path", "/"], ["path_reg", "^/items/[0-9a-f]{8}-"],
            ["path_len", "lt", "12"], ["path_dir", "v1"], ["query", "-m", "len", "gt", "1000"], ["query", "-m", "sub", "b=two"],
            ["query", "-m", "found"], ["req.cook(sid)", "xyz"], ["req.cook(sid)", "two"], ["req.cook(sid)", "-m", "found"],
            ["cook(a)", "1"], ["req.cook(b)", "-m", "found"], ["req.cook(none)", "-m", "found"], ["req.cook(sid)", "-m", "beg", "x"],
        ]
        for headers in headerSets {
            for target in targets {
                let generic = FakeSampleContext(), inPlace = FakeSampleContext()
                for c in [generic, inPlace] {
                    c.requestHeaderLines = headers
                    c.requestTarget = target
                }
                inPlace.readsInPlace = true
                for words in acls {
                    let test = try MatchMethodTests().acl(words)
                    #expect(test.matches(inPlace) == test.matches(generic), "\(words) \(headers) \(target.prefix(40))")
                }
            }
        }
        let c = FakeSampleContext()
        c.readsInPlace = true
        c.requestHeaderLines = headerSets[0]
        #expect(try MatchMethodTests().acl(["req.cook(sid)", "two"]).matches(c))
        #expect(try !MatchMethodTests().acl(["req.cook(sid)", "no"]).matches(c))
        #expect(try MatchMethodTests().acl(["hdr(x-list)", "c"]).matches(c))
        #expect(try !MatchMethodTests().acl(["fhdr(x-list)", "c"]).matches(c))
    }
}

@Suite struct RuleConditionTests {
    @Test func andOrNotAndAnonymousACLsAreLazy() throws {
        let context = RuleCompilationContext()
        let acls: [String: NamedACL] = [:]
        let c = FakeSampleContext()
        func cond(_ text: String) throws -> Bool {
            try ConditionParser.parse(ArraySlice(text.split(separator: " ").map(String.init)), acls: acls, context: context) { _ in }
                .matches(c)
        }
        #expect(try cond("if TRUE"))
        #expect(try !cond("unless TRUE"))
        #expect(try cond("if { path_beg /static } { method GET }"))
        #expect(try !cond("if { path_beg /static } !{ method GET }"))
        #expect(try cond("if FALSE || { method GET }"))
        #expect(try cond("if FALSE or TRUE"))
        #expect(try cond("if !FALSE"))
        #expect(try cond("if METH_GET LOCALHOST || TRUE"))
        #expect(try !cond("if METH_POST"))
        #expect(throws: ConditionParser.Failure.self) { try cond("if nosuch") }
    }
}

@Suite struct LogFormatStringTests {
    @Test func samplesVariablesAndLiterals() throws {
        let f = try LogFormatString.parse("%[src]:%cp via %f %[hdr(host),lower] 100%% %{+Q}[method]", context: RuleCompilationContext())
        #expect(f.evaluate(FakeSampleContext()) == "10.0.0.1:40000 via fe www.example.com:8080 100% \"GET\"")
        let missing = try LogFormatString.parse("[%[req.cook(none)]]", context: RuleCompilationContext())
        #expect(missing.evaluate(FakeSampleContext()) == "[]")
        #expect(throws: LogFormatString.Failure.self) { try LogFormatString.parse("%[nope]", context: RuleCompilationContext()) }
        #expect(throws: LogFormatString.Failure.self) { try LogFormatString.parse("%zz", context: RuleCompilationContext()) }
    }
}

@Suite struct UserlistAndHashTests {
    @Test func cryptHashesFromTheSystemLibcrypt() throws {
        let sha512 = try #require(PasswordHash.crypt("secret", setting: "$6$saltsalt$"))
        #expect(sha512.hasPrefix("$6$saltsalt$"))
        #expect(PasswordHash.crypt("secret", setting: sha512) == sha512)
        #expect(PasswordHash.crypt("wrong", setting: sha512) != sha512)
        var list = Userlist(name: "L", location: SourceLocation(file: "t", line: 1))
        list.users["bob"] = Userlist.User(name: "bob", password: sha512, isHashed: true, groups: ["admin"])
        list.users["eve"] = Userlist.User(name: "eve", password: "clear", isHashed: false, groups: [])
        func header(_ credentials: String) -> [String] {
            ["Basic " + Data(credentials.utf8).base64EncodedString()]
        }
        #expect(BasicAuth.authenticate(header("bob:secret"), in: list) == "bob")
        #expect(BasicAuth.authenticate(header("bob:nope"), in: list) == nil)
        #expect(BasicAuth.authenticate(header("eve:clear"), in: list) == "eve")
        #expect(BasicAuth.authenticate(header("mallory:x"), in: list) == nil)
    }
}

@Suite struct RuleConfigTests {
    func parse(_ body: String) -> ConfigParser.Result {
        let text = """
        defaults
            mode http
            timeout client 1s
            timeout server 1s
            timeout connect 1s
        frontend f
            bind :8080
        \(body)
            default_backend b
        backend b
            server s 127.0.0.1:1

        """
        return ConfigParser.parse([ConfigParser.Source(name: "t.cfg", text: text)])
    }

    func alerts(_ body: String) -> [String] {
        parse(body).diagnostics.filter { $0.level == .alert }.map(\.text)
    }

    @Test func globalSetVarKeepsItsOrderAndRefusesWhatNeedsAStream() {
        func parseGlobal(_ lines: String) -> ConfigParser.Result {
            ConfigParser.parse([ConfigParser.Source(name: "g.cfg", text: "global\n\(lines)\ndefaults\n    mode http\n")])
        }
        let good = parseGlobal("    set-var proc.a str(A1)\n    set-var-fmt proc.f \"v=%[var(proc.a)]\"")
        #expect(!good.hasErrors)
        #expect(good.configuration.global.variables.map(\.name.description) == ["proc.a", "proc.f"])
        let c = FakeSampleContext()
        for setting in good.configuration.global.variables { c.variables[setting.name] = setting.evaluate(c) }
        #expect(c.variables[VariableName(scope: .proc, name: "f")] == .string("v=A1"))
        let bad = parseGlobal("    set-var txn.x int(1)\n    set-var proc.y src\n    set-var proc.z\n    set-var-fmt proc.w \"%[src]\"\n    set-var proc.q int(1),nope")
        #expect(bad.diagnostics.filter { $0.level == .alert }.map(\.text).prefix(5) == [
            "config : parsing [g.cfg:2] : 'set-var': cannot set variable 'txn.x', only scope 'proc' is permitted in the global section.",
            "config : parsing [g.cfg:3] : fetch method 'set-var(proc.y)' extracts information from 'client address', none of which is available here",
            "config : parsing [g.cfg:4] : 'set-var' requires a process-wide variable name ('proc.<name>') and a sample expression.",
            "config : parsing [g.cfg:5] : sample fetch <src]> may not be reliably used here because it needs 'client address' which is not available here",
            "config : parsing [g.cfg:6] : unknown converter 'nope'",
        ])
    }

    /// A backend's (or listen's, or defaults') request rules run once the backend is known:
    /// `be_name` works there, not in a frontend's (haproxy 2.6 says the same).
    @Test func backendRequestRulesMayReadTheBackend() {
        func parsed(_ text: String) -> [String] {
            ConfigParser.parse([ConfigParser.Source(name: "b.cfg", text: "defaults\n    mode http\n" + text)])
                .diagnostics.filter { $0.level == .alert }.map(\.text)
        }
        #expect(parsed("backend b\n    http-request set-header X-B %[be_name]\n    server s 127.0.0.1:1\n").isEmpty)
        #expect(parsed("listen l\n    bind :8080\n    http-request set-header X-B %[be_name]\n    server s 127.0.0.1:1\n").isEmpty)
        #expect(parsed("backend b\n    http-request set-header X-S %[srv_name]\n").first?.contains("needs 'server'") == true)
        #expect(parsed("frontend f\n    bind :8080\n    http-request set-header X-B %[be_name]\n").first?.contains("needs 'backend'") == true)
    }

    @Test func redirectOptionsComeInAnyOrder() {
        let result = parse("    http-request redirect code 301 location %[hdr(x-to)] ignore-empty drop-query")
        #expect(!result.hasErrors)
        guard case .redirect(let rule)? = result.configuration.proxies.first(where: { $0.name == "f" })?.rules.httpRequest.first?.action else {
            Issue.record("no redirect rule")
            return
        }
        #expect(rule.kind == .location && rule.code == 301 && rule.ignoreEmpty && rule.dropQuery)
        #expect(alerts("    http-request redirect code 301").first?.hasSuffix("(was 'code').") == true)
    }

    @Test func haproxysMessagesForBadRules() {
        #expect(alerts("    acl a1 pat_beg /x").first
            == "config : parsing [t.cfg:8] : error detected while parsing ACL 'a1' : unknown fetch method 'pat_beg' in ACL expression 'pat_beg'.")
        #expect(alerts("    acl a2 path_beg -m foo /x").first
            == "config : parsing [t.cfg:8] : error detected while parsing ACL 'a2' : unknown matching method 'foo' when parsing ACL expression.")
        #expect(alerts("    acl a4 hdr(host),lowr foo").first
            == "config : parsing [t.cfg:8] : error detected while parsing ACL 'a4' : ACL keyword 'hdr' : unknown converter 'lowr'..")
        #expect(alerts("    http-request deny if a9").first
            == "config : parsing [t.cfg:8] : error detected while parsing an 'http-request deny' condition : no such ACL : 'a9'.")
        #expect(alerts("    http-request set-header X-A %[src,foo]").first
            == "config : parsing [t.cfg:8] : error detected in frontend 'f' while parsing 'http-request set-header' rule : failed to parse sample expression <src,foo]> : unknown converter 'foo'.")
        #expect(alerts("    http-request set-header X-A").first
            == "config : parsing [t.cfg:8] : error detected in frontend 'f' while parsing 'http-request set-header' rule : expects exactly 2 arguments.")
        #expect(alerts("    http-request deny deny_status 999").first
            == "config : parsing [t.cfg:8] : error detected in frontend 'f' while parsing 'http-request deny' rule : Unexpected status code '999'.")
        #expect(alerts("    http-request set-header X %[status]").first
            == "config : parsing [t.cfg:8] : error detected in frontend 'f' while parsing 'http-request set-header' rule : sample fetch <status]> may not be reliably used here because it needs 'HTTP response' which is not available here.")
        #expect(alerts("    http-request set-var(foo) src").first
            == "config : parsing [t.cfg:8] : error detected in frontend 'f' while parsing 'http-request set-var(foo)' rule : invalid variable name 'foo'. A variable name must be start by its scope. The scope can be 'proc', 'sess', 'txn', 'req', 'res' or 'check'.")
        #expect(alerts("    use_backend b if { path_bg /x }").first
            == "config : parsing [t.cfg:8] : error detected while parsing switching rule : unknown fetch method 'path_bg' in ACL expression 'path_bg'.")
        let unknown = alerts("    http-request denyy").first ?? ""
        #expect(unknown.hasPrefix("config : parsing [t.cfg:8]: 'http-request' expects 'allow', 'deny',"))
        #expect(unknown.hasSuffix("but got 'denyy'. Did you mean 'deny' maybe ?"))
    }

    @Test func aValidRuleSetIsCompiled() throws {
        let result = parse("""
            acl is_static path_beg /static /img
            acl is_static path_end .css
            acl api hdr(host) -i api.example.com
            http-request deny deny_status 429 if { src 192.0.2.0/24 }
            http-request set-header X-Client %[src]
            http-request redirect scheme https code 301 if !{ ssl_fc } api
            use_backend b if is_static || api
            use_backend %[req.hdr(x-pool),lower]
        """)
        #expect(!result.hasErrors, "\(result.diagnostics.map(\.text))")
        let f = try #require(result.configuration.proxy(named: "f"))
        #expect(f.rules.acls["is_static"]?.tests.count == 2)
        #expect(f.rules.httpRequest.count == 3)
        #expect(f.rules.useBackends.count == 2)
        #expect(f.rules.useBackends[0].fixedName == "b")
        #expect(f.rules.useBackends[1].fixedName == nil)
    }

    /// Conditions walk their ACLs' tests without counting references: every line of a name
    /// counts, a line declared after the rule too (HAProxy appends it to the same ACL), and a
    /// test with a pattern file and patterns of its own tries both lists.
    @Test func everyLineOfANamedACLAndEveryListOfATestIsTried() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("hasp-acl-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let list = dir.appendingPathComponent("nets.lst").path
        try "192.0.2.0/24\n".write(toFile: list, atomically: true, encoding: .utf8)
        let result = parse("""
            acl is_static path_beg /nomatch
            acl from_lists src -f \(list) 10.0.0.1 10.9.9.9
            use_backend b if is_static
            use_backend b if from_lists
            acl is_static path_end .png
        """)
        #expect(!result.hasErrors, "\(result.diagnostics.map(\.text))")
        let f = try #require(result.configuration.proxy(named: "f"))
        let c = FakeSampleContext()
        #expect(f.rules.useBackends[0].condition?.matches(c) == true)
        c.requestTarget = "/static/img.gif"
        #expect(f.rules.useBackends[0].condition?.matches(c) == false)
        let fromLists = try #require(f.rules.useBackends[1].condition)
        for (address, expected) in [("10.0.0.1", true), ("192.0.2.77", true), ("10.9.9.9", true), ("10.0.0.2", false)] {
            c.clientAddress = .ipv4(IPAddressText.parseIPv4(Substring(address))!)
            #expect(fromLists.matches(c) == expected, "\(address)")
        }
    }

    /// Log lines are made when the stream ends, without the messages' headers or contents:
    /// HAProxy refuses the fetches that read them in a log format, with these words.
    @Test func logFormatsRefuseWhatIsGoneAtLogTime() {
        #expect(alerts("    log-format \"x=%[req.hdr(host)] y %{+Q}[src]\"").first
            == "config : Parsing [t.cfg:8]: failed to parse log-format : sample fetch <req.hdr(host)] y %{+Q}[src]> may not be reliably used here because it needs 'HTTP request headers' which is not available here.")
        #expect(alerts("    log-format-sd \"%[hdr(host)]\"").first
            == "config : Parsing [t.cfg:8]: failed to parse log-format : sample fetch <hdr(host)]> may not be reliably used here because it needs 'HTTP request headers,HTTP response headers' which is not available here.")
        #expect(alerts("    error-log-format \"%[req.len]\"").first
            == "config : Parsing [t.cfg:8]: failed to parse log-format : sample fetch <req.len]> may not be reliably used here because it needs 'request buffer' which is not available here.")
        #expect(alerts("    log-format \"%[status] %[method] %[capture.req.hdr(0)] %[var(txn.a)] %[src]\"").isEmpty)
        // The unique ID is made while the request is there.
        #expect(alerts("    unique-id-format \"%[req.hdr(x-id)]\"").isEmpty)
        // `hdr()` reads the response in response rules.
        #expect(alerts("    http-response set-header X-A %[hdr(x-a)] if { hdr(x-b) -m found }").isEmpty)
        #expect(alerts("    http-response set-header X-A %[cookie(a)]").isEmpty)
    }

    @Test func errorfilesNeedAnHTTPErrorsSection() {
        let result = parse("    errorfiles nosuch")
        #expect(result.diagnostics.map(\.text).contains("config : parsing [t.cfg:8] : unknown http-errors section 'nosuch' in proxy 'f'."))
    }

    @Test func aclsInAnonymousDefaultsAreRefused() {
        let result = ConfigParser.parse([ConfigParser.Source(name: "t.cfg", text: "defaults\n    acl x path /\n")])
        #expect(result.diagnostics.map(\.text).contains("config : parsing [t.cfg:2] : 'acl' not allowed in anonymous 'defaults' section."))
    }

    @Test func userlistSections() throws {
        let text = """
        userlist admins
            group ops users alice
            group dev
            user alice insecure-password pw
            user bob password $6$saltsalt$Zu.1bJdpcg6fSJGfzGHB/O6HqS7dUN0wODLVu/jDLnlMoNeq.gEXCQV6vBjxUQ2S0BWujH7ODTsdNhZFB4BIQ/ groups ops

        """
        let result = ConfigParser.parse([ConfigParser.Source(name: "t.cfg", text: text)])
        #expect(!result.hasErrors, "\(result.diagnostics.map(\.text))")
        let list = try #require(result.configuration.userlists["admins"])
        let missing = ConfigParser.parse([ConfigParser.Source(name: "t.cfg", text: "userlist L\n    user u insecure-password p groups nope\n")])
        #expect(missing.diagnostics.map(\.text).contains("config : userlist 'L': no such group 'nope' specified in user 'u'"))
        #expect(list.users["alice"]?.groups == ["ops"])
        #expect(list.users["bob"]?.isHashed == true)
    }
}
