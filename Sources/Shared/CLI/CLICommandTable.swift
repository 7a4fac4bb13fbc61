/// What a command answers. The session adds the empty line that ends every reply unless
/// `endsReply` is false (forwarded worker output already has it; `prompt` prints nothing).
public struct CLIReply: Sendable, Equatable {
    public var text: String
    public var isError: Bool
    public var endsReply: Bool

    public init(_ text: String, isError: Bool = false, endsReply: Bool = true) {
        self.text = text
        self.isError = isError
        self.endsReply = endsReply
    }

    public static let empty = CLIReply("")
    public static let silent = CLIReply("", endsReply: false)
    public static func error(_ text: String) -> CLIReply { CLIReply(text, isError: true) }
    public static let permissionDenied = CLIReply.error("Permission denied\n")
}

/// Extra modes a command may require (`expert-mode on`, `experimental-mode on`).
public enum CLIRestriction: Sendable {
    case none, expert, experimental
}

/// One entry of a command table: its keywords, who may run it, its help line, and its handler.
public struct CLICommandSpec<Context>: @unchecked Sendable {
    public typealias Handler = (Context, inout CLISessionState, CLICommand) -> CLIReply

    public var keywords: [String]
    public var usage: String
    public var help: String
    public var level: CLILevel
    public var restriction: CLIRestriction
    /// Not listed by `help` (internal commands such as `_getsocks`).
    public var hidden: Bool
    public var handler: Handler

    public init(_ keywords: [String], usage: String? = nil, help: String, level: CLILevel = .user,
                restriction: CLIRestriction = .none, hidden: Bool = false, handler: @escaping Handler) {
        self.keywords = keywords
        self.usage = usage ?? keywords.joined(separator: " ")
        self.help = help
        self.level = level
        self.restriction = restriction
        self.hidden = hidden
        self.handler = handler
    }

    public var helpLine: String { CLICommandTable<Context>.format(usage, help) }
}

/// The commands of one CLI (the worker's runtime API, or the master's), with HAProxy's lookup,
/// help listing and closest-match suggestions.
public struct CLICommandTable<Context>: @unchecked Sendable {
    public var commands: [CLICommandSpec<Context>]
    /// The fixed lines `help` always ends with (help, prompt, quit).
    public var trailer: [String]

    public init(_ commands: [CLICommandSpec<Context>], promptUsage: String = "prompt [help | n | i | p | timed ]*") {
        self.commands = commands
        trailer = [Self.format("help [<command>]", "list matching or all commands"),
                   Self.format(promptUsage, "toggle interactive mode with prompt"),
                   Self.format("quit", "disconnect")]
    }

    public static func format(_ usage: String, _ help: String) -> String {
        let padded = usage.count >= 40 ? usage : usage + String(repeating: " ", count: 40 - usage.count)
        return "  \(padded): \(help)"
    }

    /// The entry whose keywords are the longest prefix of `words`.
    public func lookup(_ words: [String]) -> CLICommandSpec<Context>? {
        var best: CLICommandSpec<Context>? = nil
        for spec in commands where words.count >= spec.keywords.count && Array(words.prefix(spec.keywords.count)) == spec.keywords {
            if best == nil || spec.keywords.count > best!.keywords.count { best = spec }
        }
        return best
    }

    func visible(_ state: CLISessionState) -> [CLICommandSpec<Context>] {
        commands.filter { spec in
            guard !spec.hidden, spec.level <= state.level else { return false }
            switch spec.restriction {
            case .none: return true
            case .expert: return state.expert
            case .experimental: return state.experimental
            }
        }
    }

    /// `help [<words>]`: every visible command, or those starting with the given words.
    public func help(_ state: CLISessionState, matching words: ArraySlice<String> = []) -> String {
        var list = visible(state)
        if !words.isEmpty {
            let matching = list.filter { spec in
                zip(spec.keywords, words).allSatisfy { $0 == $1 } && spec.keywords.count >= 1 && spec.keywords.first == words.first
            }
            if !matching.isEmpty { list = matching }
        }
        return listing("The following commands are valid at this level:", list)
    }

    /// The reply to a command that matches nothing.
    public func unknown(_ words: [String], _ state: CLISessionState) -> String {
        let first = words.first ?? ""
        let list = visible(state)
        let suggestions = Self.closest(words, in: list, count: 5)
        if suggestions.isEmpty {
            return listing("Unknown command: '\(first)'. Please enter one of the following commands only:", list)
        }
        return listing("Unknown command: '\(first)', but maybe one of the following ones is a better match:", suggestions)
    }

    private func listing(_ title: String, _ specs: [CLICommandSpec<Context>]) -> String {
        var lines = [title]
        lines += specs.map(\.helpLine).sorted()
        lines += trailer
        return lines.joined(separator: "\n") + "\n"
    }

    /// The commands closest to what was typed: letter-pair fingerprints of the typed words
    /// compared with as many of each command's keywords.
    static func closest(_ words: [String], in specs: [CLICommandSpec<Context>], count: Int) -> [CLICommandSpec<Context>] {
        guard !words.isEmpty else { return [] }
        var scored: [(Int, String, CLICommandSpec<Context>)] = []
        for spec in specs {
            let n = min(words.count, spec.keywords.count)
            let typed = Fingerprint(words.prefix(max(n, 1)).joined(separator: " "))
            let known = Fingerprint(spec.keywords.prefix(max(n, 1)).joined(separator: " "))
            let d = typed.distance(to: known)
            // Keep only candidates sharing a good part of their letter pairs with the input.
            if d * 2 < typed.total + known.total { scored.append((d, spec.usage, spec)) }
        }
        scored.sort { $0.0 != $1.0 ? $0.0 < $1.0 : $0.1 < $1.1 }
        return scored.prefix(count).map(\.2)
    }

    struct Fingerprint {
        var counts: [Int: Int] = [:]
        var total = 0

        init(_ text: String) {
            func code(_ b: UInt8) -> Int {
                switch b {
                case 97...122: return Int(b) - 96
                case 65...90: return Int(b) - 64
                default: return 27
                }
            }
            var previous = 0
            for b in text.utf8 {
                let c = code(b)
                counts[previous * 32 + c, default: 0] += 1
                previous = c
                total += 1
            }
            counts[previous * 32, default: 0] += 1
            total += 1
        }

        func distance(to other: Fingerprint) -> Int {
            var d = 0
            for (k, v) in counts { d += abs(v - (other.counts[k] ?? 0)) }
            for (k, v) in other.counts where counts[k] == nil { d += v }
            return d
        }
    }
}
