import Foundation
import Shared
import Testing

/// A rule can never crash a worker: every fetch and converter, with arguments and inputs drawn
/// from a fixed-seed generator (odd bytes, huge and negative numbers, empty strings), either
/// fails to compile with a message or evaluates to a sample or to none.
@Suite struct RulesFuzzTests {
    /// The same deterministic generator as the master-worker fuzz tests.
    typealias Generator = MasterWorkerFuzzTests.Generator

    static let arguments = ["", "0", "1", "-1", "2", "-9223372036854775808", "9223372036854775807", "64", "/", ":", ",",
                            "a", "host", "txn.x", "proc.y", "sess.z", "(", "[a-", "\\1", "%", "x-forwarded-for", "1.2.3.4/8"]
    static let inputs = ["", "/", "//", "/a/b/c?x=1&y=2", "%", "%zz", "%41", "+", "é", "\u{7}", "a,b,,c", ";", "=",
                         "-9223372036854775808", "99999999999999999999", "1.2.3.4", "::1", "[::1]:80", "http://h:8080/p?q"]

    @Test func everyFetchAndConverterSurvivesOddInput() {
        var g = Generator(state: 0x5eed)
        let context = RuleCompilationContext()
        var compiled = 0
        for _ in 0..<4_000 {
            let fetch = g.pick(FetchTable.all)
            let fetchArgs = (0..<Int(g.next() % 3)).map { _ in g.pick(Self.arguments) }
            var text = fetch.name + (fetchArgs.isEmpty ? "" : "(" + fetchArgs.joined(separator: ",") + ")")
            for _ in 0..<Int(g.next() % 3) {
                let converter = g.pick(ConverterTable.all)
                if converter.name.hasPrefix("map") { continue }
                let args = (0..<Int(g.next() % 3)).map { _ in g.pick(Self.arguments) }
                text += "," + converter.name + (args.isEmpty ? "" : "(" + args.joined(separator: ",") + ")")
            }
            guard let expression = try? SampleExpressionParser.parse(text, context: context) else { continue }
            compiled += 1
            let c = FakeSampleContext()
            c.requestTarget = g.pick(Self.inputs)
            c.requestHeaderLines = [("Host", g.pick(Self.inputs)), ("Cookie", g.pick(Self.inputs)),
                                    ("X-Forwarded-For", g.pick(Self.inputs)), ("Authorization", "Basic " + g.pick(Self.inputs))]
            c.requestPayload = Array(g.pick(Self.inputs).utf8) + [22, 3, 1, 0, 200, 1]
            c.requestBody = Array(g.pick(Self.inputs).utf8)
            c.responseStatus = 200
            c.responseHeaderLines = [("Set-Cookie", g.pick(Self.inputs))]
            _ = expression.evaluate(c)
            expression.evaluateAll(c) { _ in false }
            // The same sample through ACL matching with each method.
            if let value = expression.evaluate(c) {
                for method in MatchMethod.allCases where method != .meth {
                    let patterns = (0..<3).map { i in PatternEntry(key: g.pick(Self.inputs + Self.arguments), value: nil, id: i) }
                    if let list = try? CompiledPatterns(method: method, caseInsensitive: g.next() % 2 == 0, entries: patterns) {
                        _ = list.match(value)
                    }
                }
            }
        }
        // The generator must reach the evaluator, or this test proves nothing.
        #expect(compiled > 1_000)
    }
}

extension MasterWorkerFuzzTests.Generator {
    mutating func pick<T>(_ list: [T]) -> T { list[Int(next() % UInt64(list.count))] }
}
