#if canImport(Glibc)
import Glibc
#endif

/// Commands that behave the same on the master CLI and on a worker's runtime API.
public enum CLICommonCommands {
    public static func echo<C>() -> CLICommandSpec<C> {
        CLICommandSpec(["echo"], usage: "echo <text>", help: "print text to the output") { _, _, command in
            CLIReply(command.words.dropFirst().joined(separator: " ") + "\n")
        }
    }

    public static func showCLILevel<C>() -> CLICommandSpec<C> {
        CLICommandSpec(["show", "cli", "level"], help: "display the level of the current CLI session") { _, state, _ in
            CLIReply(state.level.name + "\n")
        }
    }

    /// `operator` / `user`: lower the level (never raise it). On a worker, lowering also leaves
    /// expert and experimental modes.
    public static func lowerLevel<C>(to level: CLILevel, denial: String, clearsModes: Bool) -> CLICommandSpec<C> {
        CLICommandSpec([level.name], help: "lower the level of the current CLI session to \(level.name)") { _, state, _ in
            guard state.level >= level else { return .error(denial) }
            state.level = level
            if clearsModes {
                state.expert = false
                state.experimental = false
            }
            return .empty
        }
    }

    public static func setSeverityOutput<C>() -> CLICommandSpec<C> {
        CLICommandSpec(["set", "severity-output"], usage: "set severity-output [none|number|string]",
                       help: "set presence of severity level in feedback information") { _, state, command in
            guard command.words.count >= 3, let value = CLISeverityOutput(rawValue: command.words[2]) else {
                return .error("one of 'none', 'number', 'string' is a required argument\n")
            }
            state.severity = value
            return .empty
        }
    }

    public static func showVersion<C>() -> CLICommandSpec<C> {
        CLICommandSpec(["show", "version"], help: "show version of the current process") { _, _, _ in
            CLIReply(HaspVersion.version + "\n")
        }
    }

    public static func showEnv<C>() -> CLICommandSpec<C> {
        CLICommandSpec(["show", "env"], usage: "show env [var]", help: "dump environment variables known to the process",
                       level: .operator) { _, _, command in
            if command.words.count >= 3 {
                guard let value = ProcessEnvironment.get(command.words[2]) else { return .error("Variable not found\n") }
                return CLIReply("\(command.words[2])=\(value)\n")
            }
            var text = ""
            var p = environ
            while let entry = p.pointee {
                text += String(cString: entry) + "\n"
                p += 1
            }
            return CLIReply(text)
        }
    }

    /// A text, or an empty line when there is none.
    public static func showStartupLogs<C>(_ logs: @escaping (C) -> [String]) -> CLICommandSpec<C> {
        CLICommandSpec(["show", "startup-logs"], help: "report logs emitted during HAProxy startup", level: .operator) { context, _, _ in
            let lines = logs(context)
            return CLIReply(lines.isEmpty ? "\n" : lines.map { $0 + "\n" }.joined())
        }
    }

    /// `wait <delay>`: bounded, interrupted when the client closes its input.
    public static func parseDelay(_ text: String) -> Int? {
        var digits = Substring(text)
        var unit = ""
        while let last = digits.last, !last.isNumber {
            unit = String(last) + unit
            digits = digits.dropLast()
        }
        guard let n = Int(digits), n >= 0 else { return nil }
        switch unit {
        case "us": return max(n / 1000, n > 0 ? 1 : 0)
        case "", "ms": return n
        case "s": return n * 1000
        case "m": return n * 60_000
        case "h": return n * 3_600_000
        case "d": return n * 86_400_000
        default: return nil
        }
    }
}
