import Shared
import Testing

/// The log-format compiler and its two renderings: log lines (separators, `-`, options,
/// captures) and rule arguments.
@Suite struct LogFormatRenderingTests {
    struct Record: LogRecord {
        var values: [LogFormatString.Variable: LogFormatString.Value] = [:]
        var request: [String?]? = nil
        var response: [String?]? = nil
        func value(_ v: LogFormatString.Variable) -> LogFormatString.Value? { values[v] }
        func captures(response: Bool) -> [String?]? { response ? self.response : request }
    }

    func compile(_ text: String) throws(LogFormatString.Failure) -> LogFormatString {
        try LogFormatString.parse(text, context: RuleCompilationContext())
    }

    @Test func blanksAreOneSeparatorAndMissingValuesADash() throws {
        let record = Record(values: [.ST: .number(200), .b: .text("be"), .HQ: .text("")])
        let line = try compile("a  b %ST  %ID   %b %HQ end %[var(txn.none)]").render(record, context: FakeSampleContext())
        #expect(line == "a b 200 - be  end -")
        // Rule arguments keep the text as written and print nothing for a missing sample.
        #expect(try compile("a  b %[var(txn.none)]!").evaluate(FakeSampleContext()) == "a  b !")
    }

    @Test func capturesPrintNothingWhenNoneIsDeclared() throws {
        let format = try compile("x %hr %hs %hrl %hsl %{+Q}hrl y")
        #expect(format.render(Record(), context: nil) == "x y")
        let record = Record(request: ["h", nil, "abc"], response: [])
        #expect(format.render(record, context: nil) == "x {h||abc} {} h - abc  \"h\" - \"abc\" y")
    }

    @Test func optionsQuoteEscapeAndHex() throws {
        let record = Record(values: [.ci: .ipv4(0x7f00_0001, "127.0.0.1"), .cp: .number(54_180), .Ts: .number(0x5C53_42A0),
                                     .ST: .number(200), .HU: .text("/a\"b]c"), .tsc: .text("----")])
        #expect(try compile("%{+X}ci:%{+X}cp %{+X}Ts %{+X}ST").render(record, context: nil) == "7F000001:D3A4 5C5342A0 200")
        #expect(try compile("%{+Q}ci %{+Q}cp %{+Q}tsc %{+Q}ID").render(record, context: nil) == "\"127.0.0.1\" 54180 ---- \"\"")
        #expect(try compile("%{+E}HU %{+Q,+E}HU").render(record, context: nil) == "/a\\\"b\\]c \"/a\\\"b\\]c\"")
        // `%o` sets the options of what follows; `-Q` takes one off.
        #expect(try compile("%{+Q}o %ci %{-Q}ci %ST").render(record, context: nil) == "\"127.0.0.1\" 127.0.0.1 200")
    }

    @Test func errorsNameTheProblem() throws {
        let cases: [(String, String)] = [
            ("%zz", "no such format variable 'zz'. If you wanted to emit the '%' character verbatim, you need to use '%%'"),
            ("%{+Q", "truncated line after '+Q'"),
            ("%[nosuch]", "failed to parse sample expression <nosuch]> : unknown fetch method 'nosuch'"),
            ("abc %", "unexpected end of string after '%'"),
        ]
        for (text, message) in cases {
            #expect(throws: LogFormatString.Failure.self, "\(text)") { _ = try compile(text) }
            do { _ = try compile(text) } catch {
                #expect(error.message.hasPrefix(message), "\(text): \(error.message)")
            }
        }
        #expect(try compile("100%% %ci").render(Record(values: [.ci: .text("a")]), context: nil) == "100% a")
    }

    @Test func everyHAProxyVariableIsKnown() throws {
        let names = ["o", "B", "CC", "CS", "H", "HM", "HP", "HQ", "HU", "HV", "ID", "ST", "T", "Ta", "Tc", "Td", "Th", "Ti", "Tl", "TR",
                     "Tr", "Ts", "Tt", "Tu", "Tw", "Tq", "U", "ac", "b", "bc", "bi", "bp", "bq", "ci", "cp", "f", "fc", "fi", "fp", "ft",
                     "hr", "hrl", "hs", "hsl", "lc", "ms", "pid", "r", "rc", "rt", "s", "sc", "si", "sp", "sq", "sslc", "sslv", "t",
                     "tr", "trg", "trl", "ts", "tsc"]
        for name in names { _ = try compile("%\(name)") }
        #expect(Set(LogFormatString.Variable.allCases.map(\.rawValue)) == Set(names))
    }
}

/// `-i` and `lower`/`upper` change ASCII letters only, as HAProxy's C library calls do.
@Suite struct ASCIICaseTests {
    @Test func onlyASCIILettersChangeCase() throws {
        #expect("MiXeD-Ä/123".asciiLowercased == "mixed-Ä/123")
        #expect("MiXeD-ä/123".asciiUppercased == "MIXED-ä/123")
        let plain = "already lower"
        #expect(plain.asciiLowercased == plain)
        let context = RuleCompilationContext()
        let lower = try SampleExpressionParser.parse("str(ÉCOLE Abc),lower", context: context)
        #expect(lower.evaluate(FakeSampleContext())?.asString == "École abc")
        let acl = try ACLCompiler.compile(["str(WWW.Example.COM)", "-i", "-m", "str", "www.example.com"], context: context) { _ in }
        #expect(acl.matches(FakeSampleContext()))
        let accented = try ACLCompiler.compile(["str(ÉCOLE)", "-i", "-m", "str", "école"], context: context) { _ in }
        #expect(!accented.matches(FakeSampleContext()))
    }
}
