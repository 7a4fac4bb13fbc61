import Foundation
import Shared
import Testing

/// The keyword tables are the one source of truth: the man page must list every fetch,
/// converter and action they hold.
@Suite struct RuleTablesDocTests {
    static let manPage: String = {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        return (try? String(contentsOf: root.appendingPathComponent("man/hasp.1"), encoding: .utf8)) ?? ""
    }()

    /// The man page's text with roff escapes removed.
    static var text: String {
        manPage.replacingOccurrences(of: "\\fB", with: "").replacingOccurrences(of: "\\fR", with: "")
            .replacingOccurrences(of: "\\fI", with: "").replacingOccurrences(of: "\\-", with: "-")
            .replacingOccurrences(of: "\\&", with: "")
    }

    static func listed(_ heading: String) -> Set<String> {
        guard let line = text.split(separator: "\n").first(where: { $0.hasPrefix(heading) }) else { return [] }
        return Set(line.dropFirst(heading.count).split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) })
    }

    @Test func everyFetchAndConverterIsInTheManPage() {
        let fetches = Self.listed("Fetches:")
        let converters = Self.listed("Converters:")
        #expect(!fetches.isEmpty && !converters.isEmpty, "the man page has no Fetches:/Converters: lines")
        for name in FetchTable.all.map(\.name) { #expect(fetches.contains(name), "fetch \(name) is not in man/hasp.1") }
        for name in ConverterTable.all.map(\.name) { #expect(converters.contains(name), "converter \(name) is not in man/hasp.1") }
        for name in fetches { #expect(FetchTable.byName[name] != nil, "man/hasp.1 lists an unknown fetch \(name)") }
        for name in converters { #expect(ConverterTable.byName[name] != nil, "man/hasp.1 lists an unknown converter \(name)") }
    }

    @Test func everyHTTPActionIsInTheManPage() {
        let actions = Self.listed("HTTP actions:")
        for name in ConfigParser.httpActionNames.map(\.name) { #expect(actions.contains(name), "action \(name) is not in man/hasp.1") }
    }
}
