import Shared

/// `show events [<sink>] [-w] [-n]`: the event sinks, and the lines a `ring` holds.
extension RuntimeAPI {
    static func eventCommands() -> [Spec] {
        [Spec(["show", "events"], usage: "show events [<sink>] [-w] [-n]", help: "show event sink state") { s, _, command in
            let words = command.words.dropFirst(2)
            let newOnly = words.contains("-n")
            guard let name = words.first(where: { !$0.hasPrefix("-") }) else {
                var text = "Supported events sinks are listed below. Add -w(wait), -n(new). Any key to stop\n"
                let fixed: [(String, String, String)] = [("stdout", "fd", "standard output (fd#1)"),
                                                         ("stderr", "fd", "standard output (fd#2)")]
                for (sink, type, description) in fixed { text += "    \(Self.padded(sink)) : type=\(type), 0 dropped, \(description)\n" }
                for ring in s.runtime.eventRings {
                    let description = ring.name == "buf0" ? "in-memory ring buffer" : (ring.settings.description ?? ring.name)
                    text += "    \(Self.padded(ring.name)) : type=buffer, 0 dropped, \(description)\n"
                }
                return CLIReply(text)
            }
            guard let ring = s.runtime.eventRings.first(where: { $0.name == name }) else {
                // HAProxy ends this one without the blank line.
                return CLIReply("No such event sink\n", isError: true, endsReply: false)
            }
            // `-n`: only what comes after the command (`-w`, waiting for it, is not offered).
            if newOnly { return .empty }
            return CLIReply(ring.contents.map { String(decoding: $0, as: UTF8.self) }.joined())
        }]
    }

    private static func padded(_ name: String) -> String {
        name.count >= 10 ? name : name + String(repeating: " ", count: 10 - name.count)
    }
}
