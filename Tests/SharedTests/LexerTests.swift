import Testing
@testable import Shared

@Suite struct LineLexerTests {
    let env: [String: String] = ["PORT": "8080", "NAME": "web app", "EMPTY": ""]
    var lexer: LineLexer {
        let env = self.env
        return LineLexer(environment: { env[$0] })
    }

    @Test func splitsOnWhitespaceAndDropsComments() throws {
        #expect(try lexer.words("  bind  :80\tname  x # comment here") == ["bind", ":80", "name", "x"])
        #expect(try lexer.words("# only a comment") == [])
        #expect(try lexer.words("") == [])
    }

    @Test func quotesKeepSpacesAndHashes() throws {
        #expect(try lexer.words(#"string "hello world # not a comment""#) == ["string", "hello world # not a comment"])
        #expect(try lexer.words("a 'b c' d") == ["a", "b c", "d"])
        #expect(try lexer.words(#"x "" y"#) == ["x", "", "y"])
        #expect(try lexer.words(#"pre"mid"post"#) == ["premidpost"])
    }

    @Test func escapes() throws {
        #expect(try lexer.words(#""tab\there" \x41\x42"#) == ["tab\there", "AB"])
        #expect(try lexer.words(#""tab\there" \x41\x42"#) == ["tab\there", "AB"])
        #expect(try lexer.words(#"'no\tescape'"#) == [#"no\tescape"#])
    }

    @Test func environmentExpansion() throws {
        // Outside double quotes a `$` is a plain character (addresses expand it themselves).
        #expect(try lexer.words("bind :${PORT}") == ["bind", ":${PORT}"])
        #expect(try lexer.words("bind :$PORT") == ["bind", ":$PORT"])
        #expect(lexer.expandVariables(":${PORT}") == ":8080" && lexer.expandVariables(":$PORT") == ":8080")
        #expect(try lexer.words("user ops password $6$salt$hash") == ["user", "ops", "password", "$6$salt$hash"])
        #expect(try lexer.words(#"x "${NAME}""#) == ["x", "web app"])
        #expect(try lexer.words(#"x "${MISSING-fallback value}""#) == ["x", "fallback value"])
        #expect(try lexer.words(#"x "${PORT-1}""#) == ["x", "8080"])
        #expect(try lexer.words("x '${PORT}'") == ["x", "${PORT}"])
        #expect(try lexer.words("x \"${MISSING}y\"") == ["x", "y"])
    }

    @Test func errors() {
        #expect(throws: LineLexer.LexError.unmatchedQuote("\"")) { try lexer.words(#"a "unterminated"#) }
        #expect(throws: LineLexer.LexError.unfinishedEnvironmentVariable) { try lexer.words("a \"${PORT\"") }
        #expect(throws: LineLexer.LexError.invalidEscape("\\x")) { try lexer.words(#"a \xZZ"#) }
        let many = (0..<70).map { "w\($0)" }.joined(separator: " ")
        #expect(throws: LineLexer.LexError.tooManyWords(70)) { try lexer.words(Substring(many)) }
    }
}

@Suite struct ConditionTests {
    let evaluator = ConditionEvaluator(isDefined: { $0 == "SET" }, features: ["THREAD"], version: "3.3")

    @Test func predicates() throws {
        #expect(try evaluator.evaluate("defined(SET)"))
        #expect(try !evaluator.evaluate("defined(UNSET)"))
        #expect(try evaluator.evaluate("feature(THREAD)"))
        #expect(try !evaluator.evaluate("feature(OPENSSL)"))
        #expect(try evaluator.evaluate("streq(a,a)"))
        #expect(try evaluator.evaluate("strneq(a,b)"))
        #expect(try evaluator.evaluate("strstr(haproxy,prox)"))
        #expect(try evaluator.evaluate("version_atleast(2.5-dev0)"))
        #expect(try evaluator.evaluate("version_atleast(3.3)"))
        #expect(try !evaluator.evaluate("version_atleast(3.4-dev1)"))
        #expect(try evaluator.evaluate("version_before(3.4)"))
        #expect(try !evaluator.evaluate("version_before(3.3)"))
    }

    @Test func operatorsAndPrecedence() throws {
        #expect(try evaluator.evaluate("1 && !0"))
        #expect(try evaluator.evaluate("0 || 1 && 1"))
        #expect(try !evaluator.evaluate("(0 || 1) && 0"))
        #expect(try evaluator.evaluate("!defined(UNSET) && feature(THREAD)"))
        #expect(try !evaluator.evaluate(""))
    }

    @Test func errorsAreReported() {
        #expect(throws: ConditionEvaluator.Failure.self) { try evaluator.evaluate("foo(") }
        #expect(throws: ConditionEvaluator.Failure.self) { try evaluator.evaluate("nosuch(x)") }
        #expect(throws: ConditionEvaluator.Failure.self) { try evaluator.evaluate("streq(a)") }
        #expect(throws: ConditionEvaluator.Failure.self) { try evaluator.evaluate("word") }
    }

    @Test func versionOrdering() {
        #expect(VersionNumber("2.5-dev0")! < VersionNumber("2.5")!)
        #expect(VersionNumber("2.5-rc1")! < VersionNumber("2.5")!)
        #expect(VersionNumber("2.5-dev9")! < VersionNumber("2.5-rc1")!)
        #expect(VersionNumber("2.10")! > VersionNumber("2.9")!)
        #expect(VersionNumber("3")! == VersionNumber("3.0")!)
        #expect(VersionNumber("x.y") == nil)
    }
}

@Suite struct UnitsTests {
    @Test func times() throws {
        #expect(try Units.milliseconds("500") == 500)
        #expect(try Units.milliseconds("5s") == 5000)
        #expect(try Units.milliseconds("2m") == 120_000)
        #expect(try Units.milliseconds("1h") == 3_600_000)
        #expect(try Units.milliseconds("1d") == 86_400_000)
        #expect(try Units.milliseconds("1500us") == 2)
        #expect(throws: Units.TimeError.unexpectedCharacter("x")) { try Units.milliseconds("5x") }
        #expect(throws: Units.TimeError.empty) { try Units.milliseconds("") }
        #expect(throws: Units.TimeError.overflow) { try Units.milliseconds("30d") }
    }

    @Test func sizes() {
        #expect(Units.size("16384") == 16384)
        #expect(Units.size("16k") == 16384)
        #expect(Units.size("1m") == 1 << 20)
        #expect(Units.size("abc") == nil)
    }

    @Test func suggestions() {
        #expect(Suggestion.closest(to: "wieght", in: ["weight", "maxconn"]) == "weight")
        #expect(Suggestion.closest(to: "defualt_backend", in: ["default_backend", "use_backend"]) == "default_backend")
        #expect(Suggestion.closest(to: "zzzzzz", in: ["weight", "maxconn"]) == nil)
    }
}

@Suite struct AddressTests {
    @Test func bindForms() throws {
        #expect(try AddressParser.listenAddresses("*:80") == [.ipv4(host: "0.0.0.0", port: 80)])
        #expect(try AddressParser.listenAddresses(":8080") == [.ipv4(host: "0.0.0.0", port: 8080)])
        #expect(try AddressParser.listenAddresses("1.2.3.4:80-81") == [.ipv4(host: "1.2.3.4", port: 80), .ipv4(host: "1.2.3.4", port: 81)])
        #expect(try AddressParser.listenAddresses(":::443") == [.ipv6(host: "::", port: 443)])
        #expect(try AddressParser.listenAddresses("[::1]:443") == [.ipv6(host: "::1", port: 443)])
        #expect(try AddressParser.listenAddresses("ipv6@:80") == [.ipv6(host: "::", port: 80)])
        #expect(try AddressParser.listenAddresses("ipv4@127.0.0.1:80") == [.ipv4(host: "127.0.0.1", port: 80)])
        #expect(try AddressParser.listenAddresses("/run/hasp.sock") == [.unix(path: "/run/hasp.sock")])
        #expect(try AddressParser.listenAddresses("unix@/tmp/x") == [.unix(path: "/tmp/x")])
        #expect(try AddressParser.listenAddresses("fd@5") == [.inheritedFD(5)])
    }

    @Test func bindErrors() {
        #expect(throws: AddressParseError.invalidAddress("1.2.3.4.5")) { try AddressParser.listenAddresses("1.2.3.4.5:80") }
        #expect(throws: AddressParseError.invalidPort("99999")) { try AddressParser.listenAddresses(":99999") }
        #expect(throws: AddressParseError.missingPort("127.0.0.1")) { try AddressParser.listenAddresses("127.0.0.1") }
        #expect(throws: AddressParseError.invalidPortRange("90-80")) { try AddressParser.listenAddresses(":90-80") }
    }

    @Test func serverForms() throws {
        #expect(try AddressParser.serverAddress("127.0.0.1:8080") == .inet(host: "127.0.0.1", port: 8080))
        #expect(try AddressParser.serverAddress("10.0.0.1") == .inet(host: "10.0.0.1", port: nil))
        #expect(try AddressParser.serverAddress("[::1]:80") == .inet(host: "::1", port: 80))
        #expect(try AddressParser.serverAddress("unix@/run/app.sock") == .unix(path: "/run/app.sock"))
        #expect(throws: AddressParseError.self) { try AddressParser.serverAddress("1.2.3.4.5:80") }
    }
}
