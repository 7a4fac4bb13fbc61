/// One command of a CLI line, split into words.
public struct CLICommand: Sendable, Equatable {
    public var words: [String]
    /// Text sent after the line with `<<`: the payload of the line's last command.
    public var payload: String?
    /// The command ended with a lone `-`: its reply is not followed by the empty line (the
    /// master uses it for the session state it injects before a forwarded command).
    public var withoutEmptyLine = false

    public init(words: [String], payload: String? = nil, withoutEmptyLine: Bool = false) {
        self.words = words
        self.payload = payload
        self.withoutEmptyLine = withoutEmptyLine
    }
}

/// The CLI's line syntax, shared by the stats socket, the master CLI and forwarded sessions:
/// `;` separates commands, a backslash makes the next character literal (`\;`, `\\`, `\ `),
/// blanks separate words, and a last word `<<` or `<<PATTERN` announces a payload.
public enum CLICommandLine {
    public static let maxArguments = 64
    public static let maxPatternLength = 64
    public static let tooManyArguments = "Too many arguments. Commands must have at most 64 arguments.\n"

    public enum Failure: Error, Equatable, Sendable {
        case tooManyArguments
    }

    /// Where a line announces a payload: the line without the marker, and the terminator
    /// (nil: an empty line ends the payload).
    public static func payloadMarker(in line: String) -> (line: String, pattern: String?)? {
        let bytes = Array(line.utf8)
        var end = bytes.count
        while end > 0, bytes[end - 1] == 32 || bytes[end - 1] == 9 { end -= 1 }
        var start = end
        while start > 0, bytes[start - 1] != 32, bytes[start - 1] != 9 { start -= 1 }
        let word = bytes[start..<end]
        guard word.count >= 2, word.starts(with: [60, 60]) else { return nil }
        // An escaped marker is just text.
        var backslashes = 0
        var i = start
        while i > 0, bytes[i - 1] == 92 { backslashes += 1; i -= 1 }
        guard backslashes % 2 == 0 else { return nil }
        let pattern = word.dropFirst(2)
        guard pattern.count <= maxPatternLength else { return nil }
        let rest = String(decoding: bytes[0..<start], as: UTF8.self)
        return (rest, pattern.isEmpty ? nil : String(decoding: pattern, as: UTF8.self))
    }

    /// Splits a line (without its newline and payload marker) into commands. Empty commands
    /// (`;;`, a blank line) are kept as commands with no words.
    public static func split(_ line: String) -> [Result<CLICommand, Failure>] {
        var commands: [Result<CLICommand, Failure>] = []
        var words: [String] = []
        var word: [UInt8] = []
        var inWord = false
        var escaped = false
        func endWord() {
            if inWord { words.append(String(decoding: word, as: UTF8.self)) }
            word.removeAll(keepingCapacity: true)
            inWord = false
        }
        func endCommand() {
            endWord()
            var command = CLICommand(words: words)
            if command.words.last == "-" {
                command.words.removeLast()
                command.withoutEmptyLine = true
            }
            commands.append(words.count > maxArguments ? .failure(.tooManyArguments) : .success(command))
            words.removeAll()
        }
        for byte in line.utf8 {
            if escaped {
                word.append(byte)
                inWord = true
                escaped = false
                continue
            }
            switch byte {
            case 92: escaped = true; inWord = true
            case 59: endCommand()
            case 32, 9, 13: endWord()
            default: word.append(byte); inWord = true
            }
        }
        endCommand()
        return commands
    }
}
