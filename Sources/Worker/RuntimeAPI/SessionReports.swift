import Shared

/// `show sess` and `show errors`.
extension RuntimeAPI {
    static func sessionCommands() -> [Spec] {
        [
            Spec(["show", "sess"], usage: "show sess [help|<id>|all] [opts...]", help: "report the list of current streams or dump this exact stream",
                 level: .operator) { s, _, _ in
                CLIReply(s.api.sessionList() + s.ownLine())
            },
            Spec(["show", "errors"], usage: "show errors [<px>] [request|response]", help: "report last request and/or response errors for each proxy",
                 level: .operator) { s, _, command in
                s.api.errorReport(command.words.dropFirst(2))
            },
        ]
    }

    /// One line per client connection, read on each event loop (bounded wait).
    func sessionList() -> String {
        var lines: [String] = []
        for (index, loop) in runtime.loops.enumerated() {
            let sessions = runtime.loopSessions[index]
            let future = loop.submit { sessions.all().compactMap { ($0 as? DescribableSession)?.shortDescription() } }
            lines += (try? future.wait()) ?? []
        }
        return lines.map { $0 + "\n" }.joined()
    }

    func errorReport(_ args: ArraySlice<String>) -> CLIReply {
        var proxyFilter: String? = nil
        var kinds: Set<CapturedError.Kind> = [.request, .response]
        for arg in args {
            switch arg {
            case "request": kinds = [.request]
            case "response": kinds = [.response]
            default:
                guard runtime.configuration.proxies.contains(where: { $0.name == arg || "\($0.id)" == arg }) else {
                    return .error("No such proxy.\n")
                }
                proxyFilter = arg
            }
        }
        let captures = runtime.errorCaptures.all().filter { c in
            kinds.contains(c.kind) && (proxyFilter == nil || proxyFilter == c.proxyName || proxyFilter == "\(c.proxyID)")
        }
        var text = "Total events captured on [\(CapturedError.timestamp(WallClock.milliseconds()))] : \(runtime.errorCaptures.total())\n"
        for capture in captures { text += "\n" + capture.rendered() }
        return CLIReply(text)
    }
}

extension RuntimeSession {
    /// The CLI stream itself, as HAProxy lists it.
    func ownLine() -> String {
        "\(SessionText.identity(connection)): proto=unix_stream src=unix:1 fe=GLOBAL be=<NONE> srv=<none> ts=00 epoch=0 age=\(SessionText.age(MonotonicClock.milliseconds() - openedAtMs))\n"
    }
}
