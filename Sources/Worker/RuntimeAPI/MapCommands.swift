import Foundation
import Shared

/// Maps and ACL pattern lists at run time: `show|get|add|del|set|clear|prepare|commit map|acl`,
/// and process variables (`get var`, `set var`). Changes rebuild the compiled lists on the CLI
/// thread and publish them atomically: the event loops read them without a lock.
extension RuntimeAPI {
    static func mapCommands() -> [Spec] {
        [
            Spec(["show", "map"], usage: "show map [@ver] [map]", help: "report available maps or dump a map's contents") { s, _, c in
                s.showPatterns(c.words, map: true)
            },
            Spec(["show", "acl"], usage: "show acl [@<ver>] <acl>]", help: "report available acls or dump an acl's contents") { s, _, c in
                s.showPatterns(c.words, map: false)
            },
            Spec(["get", "map"], usage: "get map <acl> <value>", help: "report the keys and values matching a sample for a map") { s, _, c in
                s.getPattern(c.words, map: true)
            },
            Spec(["get", "acl"], usage: "get acl <acl> <value>", help: "report the patterns matching a sample for an ACL") { s, _, c in
                s.getPattern(c.words, map: false)
            },
            Spec(["add", "map"], usage: "add map [@<ver>] <map> <key> <val>",
                 help: "add a map entry (payload supported instead of key/val)", level: .operator) { s, _, c in
                s.addPatterns(c, map: true)
            },
            Spec(["add", "acl"], usage: "add acl [@<ver>] <acl> <pattern>", help: "add an acl entry", level: .operator) { s, _, c in
                s.addPatterns(c, map: false)
            },
            Spec(["del", "map"], usage: "del map <map> [<key>|#<ref>]", help: "delete map entries matching <key>",
                 level: .operator) { s, _, c in
                s.deletePattern(c.words, map: true)
            },
            Spec(["del", "acl"], usage: "del acl <acl> [<key>|#<ref>]", help: "delete acl entries matching <key>",
                 level: .operator) { s, _, c in
                s.deletePattern(c.words, map: false)
            },
            Spec(["set", "map"], usage: "set map <map> [<key>|#<ref>] <value>", help: "modify a map entry", level: .operator) { s, _, c in
                guard c.words.count == 5 else { return .error("'set map' expects three parameters: map identifier, key and value.\n") }
                guard let reference = s.patternReference(c.words[2], map: true) else { return .error(Self.unknownMap) }
                return reference.set(c.words[3], value: c.words[4]) == nil ? .empty : .error("entry not found.\n")
            },
            Spec(["clear", "map"], usage: "clear map [@<ver>] <map>", help: "clear the contents of this map", level: .operator) { s, _, c in
                s.clearPatterns(c.words, map: true)
            },
            Spec(["clear", "acl"], usage: "clear acl [@<ver>] <acl>", help: "clear the contents of this acl", level: .operator) { s, _, c in
                s.clearPatterns(c.words, map: false)
            },
            Spec(["prepare", "map"], usage: "prepare map <acl>", help: "prepare a new version for atomic map replacement",
                 level: .operator) { s, _, c in
                guard c.words.count >= 3, let reference = s.patternReference(c.words[2], map: true) else {
                    return .error(Self.unknownMap)
                }
                return CLIReply("New version created: \(reference.prepare())\n")
            },
            Spec(["prepare", "acl"], usage: "prepare acl <acl>", help: "prepare a new version for atomic ACL replacement",
                 level: .operator) { s, _, c in
                guard c.words.count >= 3, let reference = s.patternReference(c.words[2], map: false) else {
                    return .error(Self.unknownACL)
                }
                return CLIReply("New version created: \(reference.prepare())\n")
            },
            Spec(["commit", "map"], usage: "commit map @<ver> <map>", help: "commit the map at this version", level: .operator) { s, _, c in
                s.commitPatterns(c.words, map: true)
            },
            Spec(["commit", "acl"], usage: "commit acl @<ver> <acl>", help: "commit the ACL at this version", level: .operator) { s, _, c in
                s.commitPatterns(c.words, map: false)
            },
            Spec(["get", "var"], usage: "get var <name>", help: "retrieve contents of a process-wide variable") { s, _, c in
                guard c.words.count >= 3 else { return .error("Missing process-wide variable identifier.\n") }
                guard let name = try? VariableName.parse(c.words[2]), name.scope == .proc,
                      let value = s.runtime.processVariables.get(name.name) else {
                    return .error("Variable not found.\n")
                }
                // HAProxy ends this answer without the usual empty line.
                return CLIReply("\(name): type=\(value.type) value=<\(value.asString ?? "")>\n", endsReply: false)
            },
            Spec(["set", "var"], usage: "set var <name> [fmt|expr] {<fmt>|<expr>}", help: "set variable from an expression or a format", level: .operator,
                 restriction: .experimental) { s, _, c in
                guard c.words.count >= 4 else {
                    return .error("Missing process-wide variable identifier.\n")
                }
                guard let name = try? VariableName.parse(c.words[2]) else {
                    return .error("'set var': invalid variable name '\(c.words[2])'.\n")
                }
                guard name.scope == .proc else {
                    return CLIReply("'set var': cannot set variable '\(c.words[2])', only scope 'proc' is permitted here.\n",
                                    isError: true, endsReply: false)
                }
                // `set var <name> [expr] <expression>` or `set var <name> fmt <format>`.
                let isFormat = c.words[3] == "fmt"
                let first = c.words[3] == "expr" || isFormat ? 4 : 3
                guard c.words.count > first else { return .error("Missing process-wide variable identifier.\n") }
                let setting: GlobalVariableSetting
                do throws(GlobalVariableSetting.Invalid) {
                    setting = try .compile(name, c.words[first...].joined(separator: " "), isFormat: isFormat, context: RuleCompilationContext())
                } catch {
                    return .error("'set var': \(error.message)\n")
                }
                guard setting.streamExpression == nil else {
                    return .error("'set var': sample expression must not depend on a stream.\n")
                }
                guard let value = setting.evaluate(CLISampleContext(runtime: s.runtime)) else {
                    return .error("'set var': failed to evaluate the sample expression.\n")
                }
                s.runtime.processVariables.set(name.name, value)
                return .empty
            },
        ]
    }

    static let unknownMap = "Unknown map identifier. Please use #<id> or <file>.\n"
    static let unknownACL = "Unknown ACL identifier. Please use #<id> or <file>.\n"
}

extension RuntimeSession {
    var patternStore: PatternFileStore { runtime.configuration.patternFiles }

    func patternReference(_ name: String, map: Bool) -> PatternReference? {
        guard let reference = patternStore.reference(named: name) else { return nil }
        if map, !reference.isMap, name.hasPrefix("#") { return nil }
        return reference
    }

    /// `@<ver>` before the reference, if any.
    func version(_ words: [String], at index: Int) -> (Int?, Int)? {
        guard index < words.count, words[index].hasPrefix("@") else { return (nil, index) }
        guard let v = Int(words[index].dropFirst()) else { return nil }
        return (v, index + 1)
    }

    func showPatterns(_ words: [String], map: Bool) -> CLIReply {
        guard let (ver, index) = version(words, at: 2) else { return .error("Version number out of range.\n") }
        guard index < words.count else {
            var text = "# id (file) description\n"
            for reference in patternStore.references where map ? reference.isMap : reference.isACL {
                text += reference.summary + "\n"
            }
            return CLIReply(text)
        }
        guard let reference = patternReference(words[index], map: map) else {
            return .error(map ? RuntimeAPI.unknownMap : RuntimeAPI.unknownACL)
        }
        var text = ""
        for entry in reference.entries(version: ver) {
            text += "0x\(String(entry.id, radix: 16)) \(entry.key)"
            if map || reference.isMap { text += " \(entry.value ?? "")" }
            text += "\n"
        }
        return CLIReply(text)
    }

    func getPattern(_ words: [String], map: Bool) -> CLIReply {
        guard words.count >= 4 else { return .error(map ? "Missing map identifier and/or key.\n" : "Missing ACL identifier and/or key.\n") }
        guard let reference = patternReference(words[2], map: map) else {
            return .error(map ? RuntimeAPI.unknownMap : RuntimeAPI.unknownACL)
        }
        let sample = SampleValue.string(words[3...].joined(separator: " "))
        var text = ""
        for set in reference.sets {
            let compiled = set.patterns
            let prefix = "type=\(set.method.rawValue), case=\(set.caseInsensitive ? "insensitive" : "sensitive")"
            let input = compiled.method == .ip ? (sample.cast(to: .address) ?? sample) : (compiled.method == .int ? (sample.cast(to: .int) ?? sample) : sample)
            guard let index = compiled.match(input), index < compiled.entries.count else {
                text += prefix + (map ? ", found=no\n" : ", match=no\n")
                continue
            }
            let entry = compiled.entries[index]
            let idx = set.indexedAsTree ? "tree" : "list"
            if map {
                text += prefix + ", found=yes, idx=\(idx), key=\"\(entry.key)\", value=\"\(entry.value ?? "")\", type=\"\(set.mapOutput ?? "str")\"\n"
            } else {
                text += prefix + ", match=yes, idx=\(idx), pattern=\"\(entry.key)\"\n"
            }
        }
        return CLIReply(text)
    }

    func addPatterns(_ command: CLICommand, map: Bool) -> CLIReply {
        let words = command.words
        guard let (ver, index) = version(words, at: 2) else { return .error("Version number out of range.\n") }
        let usage = map ? "'add map' expects three parameters (map identifier, key and value) or one parameter (map identifier) and a payload\n"
            : "'add acl' expects two parameters: ACL identifier and pattern.\n"
        guard index < words.count else { return .error(usage) }
        guard let reference = patternReference(words[index], map: map) else {
            return .error(map ? RuntimeAPI.unknownMap : RuntimeAPI.unknownACL)
        }
        if !map, reference.isMap {
            return .error("This ACL is shared with a map containing samples. You must use the command 'add map' to add values.\n")
        }
        var items: [(key: String, value: String?)] = []
        let rest = Array(words[(index + 1)...])
        if let payload = command.payload, rest.isEmpty {
            for line in payload.split(separator: "\n") {
                let trimmed = line.drop { $0 == " " || $0 == "\t" }
                if trimmed.isEmpty { continue }
                if map {
                    let key = trimmed.prefix { $0 != " " && $0 != "\t" }
                    let value = trimmed[key.endIndex...].drop { $0 == " " || $0 == "\t" }
                    items.append((String(key), String(value)))
                } else {
                    items.append((String(trimmed), nil))
                }
            }
        } else if map {
            guard rest.count == 2 else { return .error(usage) }
            items = [(rest[0], rest[1])]
        } else {
            guard rest.count == 1 else { return .error(usage) }
            items = [(rest[0], nil)]
        }
        switch reference.add(items, version: ver) {
        case nil: return .empty
        case .versionOutOfRange?: return .error("Version number out of range.\n")
        case .invalid(let message)?: return .error(message + "\n")
        case .keyNotFound?: return .error("Key not found.\n")
        }
    }

    func deletePattern(_ words: [String], map: Bool) -> CLIReply {
        guard words.count == 4 else {
            return .error(map ? "This command expects two parameters: map identifier and key.\n"
                : "This command expects two parameters: ACL identifier and key.\n")
        }
        guard let reference = patternReference(words[2], map: map) else {
            return .error(map ? RuntimeAPI.unknownMap : RuntimeAPI.unknownACL)
        }
        return reference.delete(words[3]) == nil ? .empty : .error("Key not found.\n")
    }

    func clearPatterns(_ words: [String], map: Bool) -> CLIReply {
        guard let (ver, index) = version(words, at: 2) else { return .error("Version number out of range.\n") }
        guard index < words.count, let reference = patternReference(words[index], map: map) else {
            return .error(map ? RuntimeAPI.unknownMap : RuntimeAPI.unknownACL)
        }
        return reference.clear(version: ver) == nil ? .empty : .error("Version number out of range.\n")
    }

    func commitPatterns(_ words: [String], map: Bool) -> CLIReply {
        guard words.count >= 4, words[2].hasPrefix("@") else { return .error("Missing version number.\n") }
        guard let ver = Int(words[2].dropFirst()) else { return .error("Version number out of range.\n") }
        guard let reference = patternReference(words[3], map: map) else {
            return .error(map ? RuntimeAPI.unknownMap : RuntimeAPI.unknownACL)
        }
        switch reference.commit(version: ver) {
        case nil: return .empty
        case .invalid(let message)?: return .error(message + "\n")
        default: return .error("Version number out of range.\n")
        }
    }
}

/// What `set var` expressions (and the global section's `set-var`) may read: no stream, only
/// the process.
final class CLISampleContext: SampleContext {
    let runtime: WorkerRuntime
    init(runtime: WorkerRuntime) { self.runtime = runtime }
    var clientAddress: SampleValue? { nil }
    var clientPort: Int? { nil }
    var localAddress: SampleValue? { nil }
    var localPort: Int? { nil }
    var frontTLS: TLSSessionFacts? { nil }
    var backTLS: TLSSessionFacts? { nil }
    var frontendName: String { "" }
    var backendName: String? { nil }
    var serverName: String? { nil }
    func proxyFigure(_ figure: ProxyFigure, proxy: String?, server: String?) -> Int64? { nil }
    var requestMethod: String? { nil }
    var requestTarget: String? { nil }
    var requestPath: String? { nil }
    var requestVersion: String? { nil }
    var requestHeaderLines: [(name: String, value: String)] { [] }
    func headerValues(_ name: String, response: Bool) -> [String] { [] }
    var requestBody: [UInt8]? { nil }
    var requestPayload: [UInt8]? { nil }
    func capturedRequestHeader(_ index: Int) -> String? { nil }
    func capturedResponseHeader(_ index: Int) -> String? { nil }
    var responseStatus: Int? { nil }
    var responseHeaderLines: [(name: String, value: String)] { [] }
    func variable(_ name: VariableName) -> SampleValue? { name.scope == .proc ? runtime.processVariables.get(name.name) : nil }
    func setVariable(_ name: VariableName, _ value: SampleValue?) {
        if name.scope == .proc { runtime.processVariables.set(name.name, value) }
    }
    func userlist(named: String) -> Userlist? { runtime.configuration.userlists[named] }
    var epochSeconds: Int64 { Int64(Date().timeIntervalSince1970) }
    func random(below: UInt64) -> UInt64 { UInt64.random(in: 0..<below) }
}
