/// A time since a start, in each of the layouts HAProxy prints one.
public struct Uptime: Sendable, Equatable {
    public let seconds: Int

    public init(seconds: Int) { self.seconds = max(0, seconds) }

    private var days: Int { seconds / 86_400 }
    private var hours: Int { (seconds / 3_600) % 24 }
    private var minutes: Int { (seconds / 60) % 60 }
    private var secs: Int { seconds % 60 }

    /// `show info`'s `Uptime`: `0d 0h05m12s`.
    public var info: String { "\(days)d \(hours)h" + Self.pad2(minutes) + "m" + Self.pad2(secs) + "s" }

    /// `show proc`'s `<uptime>`: `0d00h05m12s`.
    public var processList: String { "\(days)d" + Self.pad2(hours) + "h" + Self.pad2(minutes) + "m" + Self.pad2(secs) + "s" }

    /// The timed prompt's stamp: `[0:00:05:12]`.
    public var prompt: String { "[\(days):" + Self.pad2(hours) + ":" + Self.pad2(minutes) + ":" + Self.pad2(secs) + "]" }

    private static func pad2(_ n: Int) -> String { n < 10 ? "0\(n)" : "\(n)" }
}
