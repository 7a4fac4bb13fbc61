import Shared

#if canImport(Glibc)
import Glibc
#endif

/// Where master CLI commands go: `@<n>`, `@!<pid>`, `@master` / `@0` / `@` prefixes, the
/// session's default target, and `@@` bidirectional sessions.
extension MasterCLI {
    enum Target: Equatable {
        case master
        case worker(Int32)
    }

    /// Resolves a prefix word (without its leading `@`s). Nil: no such process.
    func resolve(_ word: Substring) -> Target? {
        if word.isEmpty || word == "0" || word == "master" { return .master }
        let workers = table.read().workers
        if word.hasPrefix("!") {
            guard let pid = Int32(word.dropFirst()), workers.contains(where: { $0.pid == pid }) else { return nil }
            return .worker(pid)
        }
        // Only 1 exists: the current worker (the one with the fewest reloads).
        guard word == "1", let current = workers.filter({ !$0.leaving }).min(by: { $0.reloads < $1.reloads })
            ?? workers.min(by: { $0.reloads < $1.reloads }) else { return nil }
        return .worker(current.pid)
    }

    static func targetNotFound(_ prefix: String) -> CLIReply {
        CLIReply("Can't find the target PID matching the prefix '\(prefix)'\n", isError: true, endsReply: false)
    }

    /// Commands the master keeps whatever the target: they change the session itself.
    static let sessionCommands: Set<String> = ["prompt", "quit", "operator", "user", "expert-mode", "experimental-mode",
                                               "mcli-debug-mode", "set"]

    func route(_ command: CLICommand, _ session: CLISession<MasterSession>) -> CLIReply? {
        guard let first = command.words.first else { return nil }
        let context = session.context
        if first.hasPrefix("@") {
            guard !first.hasPrefix("@@"), let target = resolve(first.dropFirst()) else {
                return Self.targetNotFound(first)
            }
            var rest = command
            rest.words.removeFirst()
            if rest.words.isEmpty {
                context.target = Self.pid(target)
                return .silent
            }
            switch target {
            case .master: return session.executeLocally(rest)
            case .worker(let pid): return forward(rest, to: pid, session)
            }
        }
        if context.target != 0 {
            let keep = Self.sessionCommands.contains(first) && (first != "set" || command.words.dropFirst().first == "severity-output")
            if !keep { return forward(command, to: context.target, session) }
        }
        return nil
    }

    static func pid(_ target: Target) -> Int32 {
        if case .worker(let pid) = target { return pid }
        return 0
    }

    /// The session state a worker must apply before the command, each ending in `-` so that it
    /// prints nothing.
    static func preamble(_ state: CLISessionState) -> String {
        var text = ""
        if state.experimental { text += "experimental-mode on -;" }
        if state.expert { text += "expert-mode on -;" }
        if state.severity != .none { text += "set severity-output \(state.severity.rawValue) -;" }
        if state.level < .admin { text += "\(state.level.name) -;" }
        return text
    }

    /// A word as the worker's parser will read it back.
    static func escape(_ word: String) -> String {
        var out = ""
        for c in word {
            if c == " " || c == "\t" || c == ";" || c == "\\" { out.append("\\") }
            out.append(c)
        }
        return out
    }

    /// One command to a worker: sends it with the session's state, closes the worker's input,
    /// copies the answer back. Bounded by the timeout; a dead or hung worker gives one error line.
    func forward(_ command: CLICommand, to pid: Int32, _ session: CLISession<MasterSession>) -> CLIReply {
        var line = Self.preamble(session.state) + command.words.map(Self.escape).joined(separator: " ")
        if let payload = command.payload { line += " <<\n" + payload + "\n" }
        let timeout = timeoutMs
        var answer: [UInt8] = []
        var clientGone = false
        let outcome = WorkerCommand.run(line + "\n", on: pid, table: table, timeoutMs: timeout) { piece in
            answer.append(contentsOf: piece)
            // Stream long answers instead of holding them.
            if answer.count >= 65_536 {
                clientGone = !session.connection.write(String(decoding: answer, as: UTF8.self))
                answer.removeAll(keepingCapacity: true)
            }
            return !clientGone
        }
        if clientGone { return .silent }
        let text = String(decoding: answer, as: UTF8.self)
        switch outcome {
        case .answered:
            return CLIReply(text, endsReply: false)
        case .timedOut:
            return CLIReply(text + "Timed out after \(timeout) ms waiting for process \(pid) to answer; its session is closed.\n",
                            isError: true, endsReply: false)
        case .unreachable:
            return CLIReply("Can't connect to the target CLI!\n", isError: true, endsReply: false)
        }
    }

    /// `@@<n> [command]`: the client talks to the worker directly until the worker closes.
    func bidirectional(_ line: String, _ session: CLISession<MasterSession>) -> Bool {
        var text = Substring(line)
        while text.first == " " || text.first == "\t" { text = text.dropFirst() }
        guard text.hasPrefix("@@") else { return false }
        let prefixEnd = text.firstIndex(where: { $0 == " " || $0 == "\t" }) ?? text.endIndex
        let prefix = text[..<prefixEnd]
        let rest = text[prefixEnd...].drop(while: { $0 == " " || $0 == "\t" })
        guard case .worker(let pid)? = resolve(prefix.dropFirst(2)) else {
            session.write(Self.targetNotFound(String(prefix)))
            return true
        }
        guard let fd = WorkerCommand.open(with: pid, table: table) else {
            session.write(CLIReply("Can't connect to the target CLI!\n", isError: true, endsReply: false))
            return true
        }
        defer { close(fd) }
        var first = Self.preamble(session.state)
        if rest.isEmpty {
            let mode = session.state.mode == .prompt ? "p" : "i"
            first += "prompt \(mode)\(session.state.timedPrompt ? " timed" : "") -"
        } else {
            first += rest
        }
        guard CLIConnection.writeAll(fd: fd, Array((first + "\n").utf8)) else { return true }
        // With a command, what the client sends next is for the master once the worker is done.
        relay(client: session.connection, worker: fd, forwardInput: rest.isEmpty)
        return true
    }

    /// Copies both ways until the worker closes, or the client goes away entirely (POLLHUP). The
    /// client's end of input is not passed on: a `wait` running on the worker must not be interrupted by it.
    private func relay(client: CLIConnection, worker: Int32, forwardInput: Bool) {
        if forwardInput {
            let pending = client.takeBuffered()
            if !pending.isEmpty, !CLIConnection.writeAll(fd: worker, pending) { return }
        }
        var clientOpen = forwardInput && !client.sawEOF
        var chunk = [UInt8](repeating: 0, count: 16_384)
        while true {
            var fds = [pollfd(fd: worker, events: Int16(POLLIN), revents: 0),
                       pollfd(fd: client.fd, events: Int16(clientOpen ? POLLIN : 0), revents: 0)]
            if poll(&fds, 2, -1) < 0 { if errno == EINTR { continue } else { return } }
            if fds[0].revents != 0 {
                let n = read(worker, &chunk, chunk.count)
                if n <= 0 { return }
                if !CLIConnection.writeAll(fd: client.fd, Array(chunk[0..<n])) { return }
            }
            if fds[1].revents & Int16(POLLHUP | POLLERR) != 0 { return }
            if clientOpen, fds[1].revents & Int16(POLLIN) != 0 {
                let n = read(client.fd, &chunk, chunk.count)
                if n <= 0 {
                    clientOpen = false
                } else if !CLIConnection.writeAll(fd: worker, Array(chunk[0..<n])) {
                    return
                }
            }
        }
    }
}

extension CLISession {
    /// Runs a command through the table only (a prefix already chose the master).
    func executeLocally(_ command: CLICommand) -> CLIReply? {
        let saved = route
        route = nil
        defer { route = saved }
        return execute(command)
    }
}
