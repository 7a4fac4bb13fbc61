/// Protocol 0, the bare text verbs of Hasp 0.1.0, for the workers such a binary spawned: after a
/// reload into a newer binary they keep draining under the new master, send `HANDOVER
/// <frontend>` and understand `CLI`, `ADOPT <frontend>` and `STOP` as text. Only the one-datagram
/// verbs have a text form here; the chunked hand-off of a new worker is never needed, since a
/// master only spawns workers of its own binary.
public enum LegacyVerbs {
    /// The text of `message`, or nil for a message protocol 0 cannot say in one datagram.
    public static func encode(_ message: MasterWorkerMessage) -> String? {
        switch message {
        case .listeners(let count): "LISTENERS \(count)"
        case .ack(let count): "ACK \(count)"
        case .go: "GO"
        case .ready(let pid): "READY \(pid)"
        case .handover(let frontend): "HANDOVER \(frontend)"
        case .adopt(let frontend): "ADOPT \(frontend)"
        case .cli: "CLI"
        case .stop: "STOP"
        case .config, .files, .runtimeState, .runtimeStateRequest, .listenerBatch: nil
        }
    }

    public static func decode(_ bytes: [UInt8], descriptorCount: Int) throws(WireError) -> MasterWorkerMessage {
        guard let text = String(validating: bytes, as: UTF8.self) else { throw .invalid("UTF-8 text") }
        let (verb, argument) = split(text)
        let message: MasterWorkerMessage
        switch verb {
        case "LISTENERS": message = .listeners(count: try count(argument))
        case "ACK": message = .ack(count: try count(argument))
        case "GO" where argument == nil: message = .go
        case "READY":
            guard let argument, let pid = Int32(argument) else { throw .invalid("READY pid") }
            message = .ready(pid: pid)
        case "HANDOVER":
            guard let argument else { throw .invalid("HANDOVER frontend") }
            message = .handover(frontend: argument)
        case "ADOPT":
            guard let argument else { throw .invalid("ADOPT frontend") }
            message = .adopt(frontend: argument)
        case "CLI" where argument == nil: message = .cli
        case "STOP" where argument == nil: message = .stop
        default: throw .invalid("legacy verb")
        }
        guard message.descriptorCount == descriptorCount else {
            throw .invalid("\(message.verb) with \(descriptorCount) descriptor(s)")
        }
        return message
    }

    /// `VERB` or `VERB <argument>`: the argument is everything after the first space, as the
    /// old verbs took it (a frontend name is one word, but was never checked to be).
    private static func split(_ text: String) -> (String, String?) {
        guard let space = text.firstIndex(of: " ") else { return (text, nil) }
        return (String(text[..<space]), String(text[text.index(after: space)...]))
    }

    private static func count(_ argument: String?) throws(WireError) -> Int {
        guard let argument, let n = Int(argument), n >= 0 else { throw .invalid("count") }
        return n
    }
}
