/// The privilege of a CLI session. A session may lower its level, never raise it.
public enum CLILevel: Int, Sendable, Comparable, CaseIterable {
    case user = 0, `operator`, admin

    public var name: String {
        switch self {
        case .user: return "user"
        case .operator: return "operator"
        case .admin: return "admin"
        }
    }

    public init?(name: String) {
        guard let level = Self.allCases.first(where: { $0.name == name }) else { return nil }
        self = level
    }

    public static func < (a: CLILevel, b: CLILevel) -> Bool { a.rawValue < b.rawValue }
}

/// How replies are prefixed (`set severity-output`).
public enum CLISeverityOutput: String, Sendable {
    case none, number, string

    /// Syslog levels used for replies: errors are `err` (3), everything else `info` (6).
    public func prefix(isError: Bool) -> String {
        switch self {
        case .none: return ""
        case .number: return isError ? "[3]: " : "[6]: "
        case .string: return isError ? "[err]: " : "[info]: "
        }
    }
}

/// What a session looks like to its client: one command line then close, or interactive with
/// or without a prompt.
public enum CLIPromptMode: Sendable, Equatable {
    case nonInteractive
    case interactive
    case prompt
}

/// The state a CLI session carries from one command to the next.
public struct CLISessionState: Sendable {
    public var level: CLILevel
    public var mode: CLIPromptMode = .nonInteractive
    public var timedPrompt = false
    public var expert = false
    public var experimental = false
    public var mcliDebug = false
    public var severity: CLISeverityOutput = .none
    public var quit = false
    /// `set timeout cli`: replaces the listener's idle timeout for this session.
    public var idleTimeoutMs: Int? = nil

    public init(level: CLILevel) { self.level = level }

    /// `prompt [help | n | i | p | timed]*`; nil when the arguments are valid, else the usage.
    public mutating func applyPrompt(_ args: ArraySlice<String>, allowNonInteractive: Bool = true) -> String? {
        if args.isEmpty {
            mode = mode == .prompt ? (allowNonInteractive ? .nonInteractive : .interactive) : .prompt
            return nil
        }
        for arg in args {
            switch arg {
            case "n" where allowNonInteractive: mode = .nonInteractive
            case "i": mode = .interactive
            case "p": mode = .prompt
            case "timed":
                timedPrompt.toggle()
                mode = .prompt
            default:
                return Self.promptUsage(allowNonInteractive: allowNonInteractive)
            }
        }
        return nil
    }

    public static func promptUsage(allowNonInteractive: Bool) -> String {
        var lines = ["Usage: prompt [help | \(allowNonInteractive ? "n | " : "")i | p | timed]*",
                     "  help           display this help"]
        if allowNonInteractive { lines.append("  n              non-interactive mode (single command and quits)") }
        lines += ["  i              interactive mode (multiple commands, no prompt)",
                  "  p              prompt mode (multiple commands with a prompt)",
                  "  timed          toggle the uptime display in the prompt",
                  "  (no argument)  toggle the prompt"]
        return lines.joined(separator: "\n") + "\n"
    }

}
