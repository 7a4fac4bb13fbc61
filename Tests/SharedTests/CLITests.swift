import Testing
@testable import Shared

#if canImport(Glibc)
import Glibc
#endif

@Suite struct CLICommandLineTests {
    func words(_ line: String) -> [[String]] {
        CLICommandLine.split(line).map { result in
            guard case .success(let c) = result else { return ["<failure>"] }
            return c.words
        }
    }

    @Test func semicolonsSeparateCommandsAndBackslashesEscape() {
        #expect(words("show info; show stat") == [["show", "info"], ["show", "stat"]])
        #expect(words(#"echo a\;b"#) == [["echo", "a;b"]])
        #expect(words(#"echo a\\;echo b"#) == [["echo", #"a\"#], ["echo", "b"]])
        #expect(words(#"echo a\ b  c"#) == [["echo", "a b", "c"]])
        #expect(words(";;") == [[], [], []])
        #expect(words("  \t ") == [[]])
    }

    @Test func aLoneDashEndsACommandWithoutItsEmptyLine() throws {
        let results = CLICommandLine.split("user -;show info")
        guard case .success(let first) = results[0], case .success(let second) = results[1] else {
            Issue.record("parse failed")
            return
        }
        #expect(first.words == ["user"] && first.withoutEmptyLine)
        #expect(second.words == ["show", "info"] && !second.withoutEmptyLine)
    }

    @Test func atMost64Arguments() {
        let ok = (["echo"] + Array(repeating: "x", count: 63)).joined(separator: " ")
        let tooMany = (["echo"] + Array(repeating: "x", count: 64)).joined(separator: " ")
        #expect(words(ok).first?.count == 64)
        #expect(CLICommandLine.split(tooMany).first == .failure(.tooManyArguments))
        #expect(CLICommandLine.tooManyArguments == "Too many arguments. Commands must have at most 64 arguments.\n")
    }

    @Test func payloadMarkers() {
        #expect(CLICommandLine.payloadMarker(in: "add map m <<")! == ("add map m ", nil))
        #expect(CLICommandLine.payloadMarker(in: "set ssl cert c <<EOF")! == ("set ssl cert c ", "EOF"))
        #expect(CLICommandLine.payloadMarker(in: #"echo \<<"#) == nil)
        #expect(CLICommandLine.payloadMarker(in: "echo a<<b") == nil)
        #expect(CLICommandLine.payloadMarker(in: "echo <<" + String(repeating: "p", count: 65)) == nil)
        #expect(CLICommandLine.payloadMarker(in: "show info") == nil)
    }
}

@Suite struct CLIStateTests {
    @Test func promptArguments() {
        var s = CLISessionState(level: .admin)
        #expect(s.applyPrompt([]) == nil && s.mode == .prompt)
        #expect(s.applyPrompt([]) == nil && s.mode == .nonInteractive)
        #expect(s.applyPrompt(["i"]) == nil && s.mode == .interactive)
        #expect(s.applyPrompt(["timed"]) == nil && s.mode == .prompt && s.timedPrompt)
        #expect(s.applyPrompt(["n"]) == nil && s.mode == .nonInteractive)
        #expect(s.applyPrompt(["bogus"])?.hasPrefix("Usage: prompt [help | n | i | p | timed]*\n") == true)
        // The master has no non-interactive mode.
        var m = CLISessionState(level: .admin)
        m.mode = .prompt
        #expect(m.applyPrompt([], allowNonInteractive: false) == nil && m.mode == .interactive)
        #expect(m.applyPrompt(["n"], allowNonInteractive: false) != nil)
    }

    @Test func timedPromptStamp() {
        #expect(Uptime(seconds: 0).prompt == "[0:00:00:00]")
        #expect(Uptime(seconds: 90061).prompt == "[1:01:01:01]")
        #expect(Uptime(seconds: 90061).info == "1d 1h01m01s")
        #expect(Uptime(seconds: 90061).processList == "1d01h01m01s")
        #expect(Uptime(seconds: -5).info == "0d 0h00m00s")
    }

    @Test func severityPrefixes() {
        #expect(CLISeverityOutput.number.prefix(isError: true) == "[3]: ")
        #expect(CLISeverityOutput.number.prefix(isError: false) == "[6]: ")
        #expect(CLISeverityOutput.string.prefix(isError: true) == "[err]: ")
        #expect(CLISeverityOutput.none.prefix(isError: true) == "")
    }

    @Test func delays() {
        #expect(CLICommonCommands.parseDelay("300") == 300)
        #expect(CLICommonCommands.parseDelay("2s") == 2000)
        #expect(CLICommonCommands.parseDelay("1m") == 60_000)
        #expect(CLICommonCommands.parseDelay("1500us") == 1)
        #expect(CLICommonCommands.parseDelay("1d") == 86_400_000)
        #expect(CLICommonCommands.parseDelay("2x") == nil)
        #expect(CLICommonCommands.parseDelay("s") == nil)
    }
}

/// A session over a socketpair: the client side is driven by the test.
@Suite struct CLISessionTests {
    final class Box { var text = "" }
    typealias Spec = CLICommandSpec<Box>

    static let table = CLICommandTable<Box>([
        CLICommonCommands.echo(),
        CLICommonCommands.showCLILevel(),
        CLICommonCommands.lowerLevel(to: .operator, denial: "Permission denied\n", clearsModes: true),
        CLICommonCommands.setSeverityOutput(),
        Spec(["show", "payload"], help: "print the payload") { _, _, command in CLIReply((command.payload ?? "none") + "\n") },
        Spec(["admin", "only"], help: "needs admin", level: .admin) { _, _, _ in CLIReply("done\n") },
        Spec(["expert", "only"], help: "needs expert mode", restriction: .expert) { _, _, _ in CLIReply("done\n") },
    ])

    /// Runs a session on one end; sends `input`, closes the input, returns everything received.
    func exchange(_ input: String, level: CLILevel = .admin) throws -> String {
        var fds: [Int32] = [0, 0]
        #expect(socketpair(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0, &fds) == 0)
        let server = fds[0], client = fds[1]
        let session = CLISession(connection: CLIConnection(fd: server), table: Self.table, context: Box(),
                                 state: CLISessionState(level: level), idleTimeoutMs: 5_000)
        let done = DetachedThread.start {
            session.run()
            close(server)
        }
        #expect(done)
        let bytes = Array(input.utf8)
        _ = bytes.withUnsafeBytes { write(client, $0.baseAddress, $0.count) }
        shutdown(client, Int32(SHUT_WR))
        var out: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 4096)
        while true {
            var p = pollfd(fd: client, events: Int16(POLLIN), revents: 0)
            guard poll(&p, 1, 5_000) > 0 else { break }
            let n = read(client, &chunk, chunk.count)
            if n <= 0 { break }
            out.append(contentsOf: chunk[0..<n])
        }
        close(client)
        return String(decoding: out, as: UTF8.self)
    }

    @Test func nonInteractiveRunsOneLineThenCloses() throws {
        #expect(try exchange("echo a; echo b\necho never\n") == "a\n\nb\n\n")
    }

    @Test func promptModeKeepsTheSessionAndPrompts() throws {
        #expect(try exchange("prompt\necho hi\n\nquit\necho never\n") == "\n> hi\n\n> > ")
        #expect(try exchange("prompt i\necho hi\n") == "\nhi\n\n")
    }

    @Test func payloadsEndWithAnEmptyLineOrTheirPattern() throws {
        #expect(try exchange("show payload <<\nl1\nl2\n\n") == "l1\nl2\n\n")
        #expect(try exchange("show payload <<END\nl1\n\nl3\nEND\n") == "l1\n\nl3\n\n")
        #expect(try exchange("show payload\n") == "none\n\n")
    }

    @Test func levelsAndModes() throws {
        #expect(try exchange("admin only", level: .operator) == "Permission denied\n\n")
        #expect(try exchange("operator; admin only; show cli level") == "\nPermission denied\n\noperator\n\n")
        #expect(try exchange("expert only") == "This command is restricted to expert mode only.\n\n")
        #expect(try exchange("set severity-output number; show cli level; admin only", level: .user)
            == "\n[6]: user\n\n[3]: Permission denied\n\n")
        #expect(try exchange("set severity-output bogus") == "one of 'none', 'number', 'string' is a required argument\n\n")
    }

    @Test func unknownCommandsSuggestOrListEverything() throws {
        let suggestion = try exchange("show clilevel")
        #expect(suggestion.hasPrefix("Unknown command: 'show', but maybe one of the following ones is a better match:\n"))
        #expect(suggestion.contains("  show cli level                          : display the level of the current CLI session\n"))
        #expect(suggestion.hasSuffix("  help [<command>]                        : list matching or all commands\n"
            + "  prompt [help | n | i | p | timed ]*     : toggle interactive mode with prompt\n"
            + "  quit                                    : disconnect\n\n"))
        let none = try exchange("zzzzzz")
        #expect(none.hasPrefix("Unknown command: 'zzzzzz'. Please enter one of the following commands only:\n"))
        // `help` hides what the level does not allow.
        #expect(!(try exchange("help", level: .operator)).contains("admin only"))
        #expect(try exchange("help").contains("  admin only                              : needs admin\n"))
    }

    @Test func tooManyArgumentsAndTooLongLines() throws {
        let args = (["echo"] + Array(repeating: "x", count: 70)).joined(separator: " ")
        #expect(try exchange(args) == CLICommandLine.tooManyArguments + "\n")
        let long = "echo " + String(repeating: "y", count: 20_000)
        #expect(try exchange(long).hasPrefix("The command line is too big for the buffer size."))
    }
}

@Suite struct ServerPathTests {
    @Test func backendAndServerSplitAtTheFirstSlash() {
        #expect(ServerPath("be/s1") == ServerPath("be/s1"))
        #expect(ServerPath("be/s1")?.backend == "be" && ServerPath("be/s1")?.server == "s1")
        #expect(ServerPath("s1")?.backend == nil && ServerPath("s1")?.backend(or: "mine") == "mine")
        #expect(ServerPath("be/a/b")?.server == "a/b")
        #expect(ServerPath("/s1")?.backend == "")
        #expect(ServerPath("be/") == nil)
        #expect(ServerPath("") == nil)
    }
}
