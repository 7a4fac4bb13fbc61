/// A `waitpid` status as HAProxy reports it: `exited with code <n> (<reason>)`.
public struct ProcessStatus: Sendable, Equatable {
    public var exitCode: Int32
    public var reason: String

    public init(_ status: Int32) {
        let signal = status & 0x7f
        if signal == 0 {
            exitCode = (status >> 8) & 0xff
            reason = "Exit"
        } else {
            exitCode = 128 + signal
            reason = ProcessStatus.signalName(signal)
        }
    }

    public static func signalName(_ signal: Int32) -> String {
        switch signal {
        case 1: return "Hangup"
        case 2: return "Interrupt"
        case 3: return "Quit"
        case 6: return "Aborted"
        case 9: return "Killed"
        case 11: return "Segmentation fault"
        case 13: return "Broken pipe"
        case 15: return "Terminated"
        case 10: return "User defined signal 1"
        case 12: return "User defined signal 2"
        default: return "Signal \(signal)"
        }
    }
}
