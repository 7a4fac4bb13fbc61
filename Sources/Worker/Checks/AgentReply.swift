/// What an agent's one-line answer asks for (`up`, `down`, `ready`, `drain`, `maint`,
/// `stopped`, `fail`, `75%`, `maxconn:30`, then `#` and a description).
public struct AgentReply: Sendable, Equatable {
    public enum Health: Sendable, Equatable { case up, down, stopped, fail }
    public enum Admin: Sendable, Equatable { case ready, drain, maint }

    public var health: Health? = nil
    public var admin: Admin? = nil
    /// Percentage of the initial weight.
    public var weightPercent: Int? = nil
    public var maxconn: Int? = nil
    public var description = ""

    public init() {}

    /// Parses the first line of `text`; nil when it holds nothing the agent protocol knows.
    public init?(parsing text: String) {
        // "\r\n" is one Character in Swift: split on any line end.
        var line = text.split(maxSplits: 1, omittingEmptySubsequences: false, whereSeparator: \.isNewline).first ?? ""
        if let hash = line.firstIndex(of: "#") {
            description = String(line[line.index(after: hash)...].drop { $0 == " " })
            line = line[..<hash]
        }
        var understood = false
        for word in line.split(whereSeparator: { $0 == " " || $0 == "," || $0 == "\t" }) {
            let lower = word.lowercased()
            switch lower {
            case "up": health = .up
            case "down": health = .down
            case "stopped": health = .stopped
            case "fail": health = .fail
            case "ready": admin = .ready
            case "drain": admin = .drain
            case "maint": admin = .maint
            default:
                if lower.hasSuffix("%"), let n = Int(lower.dropLast()), n >= 0 {
                    weightPercent = n
                } else if lower.hasPrefix("maxconn:"), let n = Int(lower.dropFirst(8)), n >= 0 {
                    maxconn = n
                } else {
                    continue
                }
            }
            understood = true
        }
        if !understood { return nil }
    }
}
