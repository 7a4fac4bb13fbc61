/// One CLI session on one connection: reads lines (and their payloads), runs each `;`-separated
/// command through the table, writes the replies, and keeps going while the session is
/// interactive. Used by the worker's stats sockets, the sessions the master forwards to a
/// worker, and the master CLI.
public final class CLISession<Context> {
    public let connection: CLIConnection
    public let table: CLICommandTable<Context>
    public let context: Context
    public var state: CLISessionState
    /// `stats timeout`: how long an idle session may wait for its next line.
    public var idleTimeoutMs: Int
    /// The prompt for the current state (`> `, `master> `...).
    public var promptText: (CLISessionState) -> String = { _ in "> " }
    /// False on the master, which has no non-interactive mode and prints nothing for `prompt`.
    public var workerStyle = true
    /// Sees each whole line first; true when it dealt with it (the master's `@@` sessions).
    public var lineHook: ((String, CLISession<Context>) -> Bool)?
    /// Sees each command before the table; a reply when it dealt with it (the master's routing).
    public var route: ((CLICommand, CLISession<Context>) -> CLIReply?)?
    public static var maxPayload: Int { 128 * 1024 }

    public init(connection: CLIConnection, table: CLICommandTable<Context>, context: Context,
                state: CLISessionState, idleTimeoutMs: Int) {
        self.connection = connection
        self.table = table
        self.context = context
        self.state = state
        self.idleTimeoutMs = idleTimeoutMs
    }

    public func run() {
        while !state.quit {
            let line: String
            switch connection.readLine(timeoutMs: state.idleTimeoutMs ?? idleTimeoutMs) {
            case .line(let text): line = text
            case .eof, .timeout: return
            case .tooLong:
                write(CLIReply.error("The command line is too big for the buffer size. Please change 'tune.bufsize' in the configuration to use a bigger command.\n"))
                return
            }
            if let hook = lineHook, hook(line, self) {
                if state.mode == .prompt { _ = connection.write(promptText(state)) }
                if workerStyle && state.mode == .nonInteractive { return }
                continue
            }
            var body = line
            var payload: String? = nil
            if let marker = CLICommandLine.payloadMarker(in: line) {
                body = marker.line
                guard let text = readPayload(until: marker.pattern) else { return }
                payload = text
            }
            var results = CLICommandLine.split(body)
            if let payload, let last = results.indices.last, case .success(var command) = results[last] {
                command.payload = payload
                results[last] = .success(command)
            }
            for result in results {
                if state.quit { break }
                let reply: CLIReply?
                var bare = false
                switch result {
                case .failure: reply = .error(CLICommandLine.tooManyArguments)
                case .success(let command):
                    bare = command.withoutEmptyLine
                    reply = execute(command)
                }
                if let reply {
                    var r = reply
                    if bare { r.endsReply = false }
                    guard write(r) else { return }
                }
                if state.mode == .prompt, !state.quit, reply != nil || results.count == 1 {
                    guard connection.write(promptText(state)) else { return }
                }
            }
            if workerStyle && state.mode == .nonInteractive { return }
        }
    }

    /// Runs one command; nil for an empty one.
    public func execute(_ command: CLICommand) -> CLIReply? {
        guard let first = command.words.first else { return nil }
        if let route, let reply = route(command, self) { return reply }
        switch first {
        case "help":
            return CLIReply(table.help(state, matching: command.words.dropFirst()))
        case "prompt":
            if let usage = state.applyPrompt(command.words.dropFirst(), allowNonInteractive: workerStyle) {
                return CLIReply(usage)
            }
            return workerStyle ? .empty : .silent
        case "quit":
            state.quit = true
            return .silent
        default:
            break
        }
        guard let spec = table.lookup(command.words) else {
            return CLIReply(table.unknown(command.words, state))
        }
        if spec.level > state.level { return .permissionDenied }
        switch spec.restriction {
        case .expert where !state.expert:
            return .error("This command is restricted to expert mode only.\n")
        case .experimental where !state.experimental:
            return .error("This command is restricted to experimental mode only.\n")
        default:
            break
        }
        return spec.handler(context, &state, command)
    }

    @discardableResult
    public func write(_ reply: CLIReply) -> Bool {
        var text = reply.text.isEmpty ? "" : state.severity.prefix(isError: reply.isError) + reply.text
        if reply.endsReply { text += "\n" }
        return text.isEmpty || connection.write(text)
    }

    /// Lines up to an empty one (or the pattern), joined with newlines; nil if the client left.
    private func readPayload(until pattern: String?) -> String? {
        var lines: [String] = []
        var size = 0
        while true {
            if state.mode == .prompt { _ = connection.write("+ ") }
            switch connection.readLine(timeoutMs: idleTimeoutMs) {
            case .line(let text):
                if let pattern { if text == pattern { return lines.joined(separator: "\n") } } else if text.isEmpty {
                    return lines.joined(separator: "\n")
                }
                size += text.utf8.count + 1
                if size > Self.maxPayload { return nil }
                lines.append(text)
            case .eof:
                return lines.joined(separator: "\n")
            case .timeout, .tooLong:
                return nil
            }
        }
    }
}
