import Shared
import Testing
@testable import Worker
#if canImport(Glibc)
import Glibc
#endif

@Suite struct LogFormatTests {
    @Test func datesAndFormats() throws {
        // 2026-11-25 16:30:40.123456 in the local zone of the test run.
        let micros = 1_795_624_240_123_456
        let date = LogDate.haproxy(micros)
        #expect(date.count == "25/Nov/2026:16:30:40.123".count && date.hasSuffix(".123"))
        #expect(LogDate.rfc3164(micros).count == "Nov 25 16:30:40".count)
        let sink = try #require(LogSink.open("stderr"))
        let logger = ProxyLogger(routes: [], tag: "hasp")
        func route(_ format: String) -> ProxyLogger.Route {
            ProxyLogger.Route(sink: sink, facility: 16, maxLevel: 7, minLevel: 0, format: format)
        }
        #expect(logger.line("hello", route: route("raw"), level: 6, now: micros) == "hello\n")
        #expect(logger.line("hello", route: route("short"), level: 6, now: micros) == "<134>hello\n")
        let classic = logger.line("hello", route: route("rfc3164"), level: 5, now: micros)
        #expect(classic.hasPrefix("<133>") && classic.hasSuffix(" hasp[\(getpid())]: hello\n"))
        let modern = logger.line("hello", route: route("rfc5424"), level: 6, now: micros)
        #expect(modern.hasPrefix("<134>1 2026-11-") && modern.hasSuffix(" hasp \(getpid()) - - hello\n"))
    }

    @Test func logLineParsing() {
        let ok = parseConfig("global\n    log 127.0.0.1:514 len 1024 format rfc5424 local3 notice err\n")
        #expect(ok.diagnostics.isEmpty)
        let t = ok.configuration.global.logTargets.first
        #expect(t?.facility == "local3" && t?.level == "notice" && t?.minLevel == "err" && t?.format == "rfc5424")
        #expect(parseConfig("global\n    log 127.0.0.1 local9\n").diagnostics.first?.text == "config : parsing [t.cfg:2] : unknown log facility 'local9'")
        #expect(parseConfig("global\n    log 127.0.0.1 local0 loud\n").diagnostics.first?.text == "config : parsing [t.cfg:2] : unknown optional log level 'loud'")
        #expect(parseConfig("global\n    log 127.0.0.1 format fancy local0\n").diagnostics.first?.text == "config : parsing [t.cfg:2] : unknown log format 'fancy'")
        #expect(parseConfig("global\n    log-tag edge\n").configuration.global.logTag == "edge")
        let proxy = parseConfig("defaults\n    log global\nbackend be\nbackend quiet\n    no log\n")
        #expect(proxy.configuration.proxies.first { $0.name == "be" }?.logGlobal == true)
        #expect(proxy.configuration.proxies.first { $0.name == "quiet" }?.logGlobal == false)
    }

    func parseConfig(_ text: String) -> ConfigParser.Result {
        let lexer = LineLexer(environment: { _ in nil })
        let conditions = ConditionEvaluator(isDefined: { _ in false }, features: [], version: "3.3")
        return ConfigParser.parse([ConfigParser.Source(name: "t.cfg", text: text)], lexer: lexer, conditions: conditions)
    }
}
