/// `ring <name>` sections: in-memory buffers that `log ring@<name>` targets write to and that
/// `show events <name>` reads.
extension ConfigParser {
    mutating func parseRingLine(_ w: [String], _ ring: inout RingSettings) {
        let value = w.count > 1 ? w[1] : ""
        switch w[0] {
        case "description":
            ring.description = w.dropFirst().joined(separator: " ")
        case "format":
            guard LogTarget.formats.contains(value) else { return parsingAlert("unknown format '\(value)'.") }
            ring.format = value
        case "maxlen":
            guard let n = Int(value), n > 0 else { return parsingAlert("invalid size '\(value)' for new sink buffer.") }
            ring.maxLength = n
        case "size":
            guard let n = Units.size(value), n > 0 else { return parsingAlert("invalid size '\(value)' for new sink buffer.") }
            ring.size = n
        case "timeout":
            break
        case "server":
            // HAProxy forwards a ring to TCP syslog servers; Hasp keeps it in memory only.
            parsingWarning("ring '\(ring.name)': 'server' is not supported by Hasp yet; the ring's lines stay in memory (show events).")
        default:
            parsingAlert("unknown statement '\(w[0])'.")
        }
    }
}
