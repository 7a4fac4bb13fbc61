import Shared

/// `show resolvers`: the name servers' counters, in HAProxy's format.
extension RuntimeAPI {
    static func resolverCommands() -> [Spec] {
        [
            Spec(["show", "resolvers"], usage: "show resolvers [id]", help: "dumps counters from all resolvers section and associated name servers",
                 level: .user) { s, _, c in
                guard let text = s.runtime.resolvers.counters.report(only: c.words.count > 2 ? c.words[2] : nil) else {
                    return .error("Can't find that resolvers section\n")
                }
                return CLIReply(text)
            },
        ]
    }
}
