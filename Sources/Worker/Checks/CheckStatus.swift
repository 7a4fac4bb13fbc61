/// HAProxy's check status codes (`check_status` in `show stat`), in HAProxy's order: the codes
/// from `l7ok` on carry an HTTP (or agent) code worth printing.
public enum CheckStatus: Int, Sendable, Comparable {
    /// `checked`: an agent answered without a health word (only drain, weight...): no change.
    case unknown, initializing, checked, healthAnalyze, socketError
    case l4ok, l4timeout, l4connect
    case l6ok, l6timeout, l6response
    case l7timeout, l7response
    case l7ok, l7okConditional, l7status

    public static func < (a: CheckStatus, b: CheckStatus) -> Bool { a.rawValue < b.rawValue }

    public enum Outcome: Sendable { case unknown, failed, passed, conditionallyPassed }

    /// The short code: `L4OK`, `L7STS`...
    public var info: String {
        switch self {
        case .unknown: return "UNK"
        case .initializing: return "INI"
        case .checked: return "CHECKED"
        case .healthAnalyze: return "HANA"
        case .socketError: return "SOCKERR"
        case .l4ok: return "L4OK"
        case .l4timeout: return "L4TOUT"
        case .l4connect: return "L4CON"
        case .l6ok: return "L6OK"
        case .l6timeout: return "L6TOUT"
        case .l6response: return "L6RSP"
        case .l7timeout: return "L7TOUT"
        case .l7response: return "L7RSP"
        case .l7ok: return "L7OK"
        case .l7okConditional: return "L7OKC"
        case .l7status: return "L7STS"
        }
    }

    /// The words of the `reason:` in log lines.
    public var description: String {
        switch self {
        case .unknown: return "Unknown"
        case .initializing: return "Initializing"
        case .checked: return "No status change"
        case .healthAnalyze: return "Health analyze"
        case .socketError: return "Socket error"
        case .l4ok: return "Layer4 check passed"
        case .l4timeout: return "Layer4 timeout"
        case .l4connect: return "Layer4 connection problem"
        case .l6ok: return "Layer6 check passed"
        case .l6timeout: return "Layer6 timeout"
        case .l6response: return "Layer6 invalid response"
        case .l7timeout: return "Layer7 timeout"
        case .l7response: return "Layer7 invalid response"
        case .l7ok: return "Layer7 check passed"
        case .l7okConditional: return "Layer7 check conditionally passed"
        case .l7status: return "Layer7 wrong status"
        }
    }

    public var outcome: Outcome {
        switch self {
        case .unknown, .initializing, .checked: return .unknown
        case .l4ok, .l6ok, .l7ok: return .passed
        case .l7okConditional: return .conditionallyPassed
        default: return .failed
        }
    }

    /// HAProxy's numbers for the status and its result, as `show servers state` prints them.
    public var haproxyCode: Int {
        switch self {
        case .unknown: return 0
        case .initializing: return 1
        case .checked: return 3
        case .healthAnalyze: return 4
        case .socketError: return 5
        case .l4ok: return 6
        case .l4timeout: return 7
        case .l4connect: return 8
        case .l6ok: return 9
        case .l6timeout: return 10
        case .l6response: return 11
        case .l7timeout: return 12
        case .l7response: return 13
        case .l7ok: return 15
        case .l7okConditional: return 16
        case .l7status: return 17
        }
    }

    public var haproxyResult: Int {
        switch outcome {
        case .unknown: return 0
        case .failed: return 2
        case .passed: return 3
        case .conditionallyPassed: return 4
        }
    }

    /// Codes from here on report the response code (`code: 503`).
    public var carriesCode: Bool { self >= .l7ok }
}

/// The result of one check run.
public struct CheckReport: Sendable, Equatable {
    public var status: CheckStatus
    public var code: Int = 0
    public var description: String = ""
    public var durationMs: Int = -1

    public init(status: CheckStatus, code: Int = 0, description: String = "", durationMs: Int = -1) {
        self.status = status
        self.code = code
        self.description = description
        self.durationMs = durationMs
    }

    /// `, reason: ..., code: ..., info: "...", check duration: Nms`, as HAProxy appends it.
    public var reasonText: String {
        var text = ", reason: \(status.description)"
        if status.carriesCode { text += ", code: \(code)" }
        if !description.isEmpty { text += ", info: \"\(Self.escaped(description))\"" }
        if durationMs >= 0 { text += ", check duration: \(durationMs)ms" }
        return text
    }

    /// Non-printable bytes and double quotes as `<XX>`, as HAProxy encodes check descriptions.
    static func escaped(_ text: String) -> String {
        var out = ""
        for scalar in text.unicodeScalars {
            if scalar == "\"" || scalar.value < 0x20 || scalar.value >= 0x7f {
                let hex = String(scalar.value & 0xff, radix: 16, uppercase: true)
                out += "<" + (hex.count == 1 ? "0" + hex : hex) + ">"
            } else {
                out.unicodeScalars.append(scalar)
            }
        }
        return out
    }
}

/// HAProxy's health counter for one check: `0..<rise` is down (going up), `rise...rise+fall-1`
/// is up (going down when below the top). A fresh server starts at `rise`: up, but the first
/// failure marks it down.
public struct CheckHealth: Sendable, Equatable {
    public let rise: Int
    public let fall: Int
    public private(set) var health: Int

    public init(rise: Int, fall: Int, health: Int? = nil) {
        self.rise = max(1, rise)
        self.fall = max(1, fall)
        self.health = health ?? max(1, rise)
    }

    public var isUp: Bool { health >= rise }
    public var top: Int { rise + fall - 1 }
    /// Steady: fully up or fully down (the schedule uses `inter`/`downinter`, else `fastinter`).
    public var isSteadyUp: Bool { health == top }
    public var isSteadyDown: Bool { health == 0 }

    /// Counts one check. Returns whether the counter moved (HAProxy reports the check then).
    public mutating func record(_ outcome: CheckStatus.Outcome) -> Bool {
        switch outcome {
        case .failed:
            guard health > 0 else { return false }
            health -= 1
            if health < rise { health = 0 }
            return true
        case .passed, .conditionallyPassed:
            guard health < top else { return false }
            health += 1
            if health >= rise { health = top }
            return true
        case .unknown:
            return false
        }
    }

    public mutating func set(_ value: Int) { health = min(max(0, value), top) }
    public mutating func markUp() { health = top }
    public mutating func markDown() { health = 0 }
    /// Leaving maintenance: up, but checked again at once.
    public mutating func resume() { health = rise }

    /// `3/3 UP`, `1/2 DOWN`, as in the `Health check for server` lines.
    public func progress(drain: Bool) -> String {
        isUp ? "\(health - rise + 1)/\(fall) \(drain ? "DRAIN" : "UP")" : "\(health)/\(rise) DOWN"
    }
}
