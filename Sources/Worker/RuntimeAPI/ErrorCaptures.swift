import NIOConcurrencyHelpers
import Shared

#if canImport(Glibc)
import Glibc
#endif

/// A malformed request or response kept for `show errors`.
struct CapturedError: Sendable {
    enum Kind: Sendable { case request, response }

    var kind: Kind
    var proxyName: String
    var proxyID: Int
    var isFrontend: Bool
    var backendName: String?
    var backendID: Int
    var serverName: String?
    var serverID: Int
    var event: Int
    var source: String
    var timeMs: Int
    var bytes: [UInt8]

    /// `[25/Nov/2026:13:21:49.762]`-style date, in local time as HAProxy prints it.
    static func timestamp(_ ms: Int) -> String {
        var seconds = time_t(ms / 1000)
        var parts = tm()
        localtime_r(&seconds, &parts)
        let months = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]
        func p(_ n: Int32, _ width: Int = 2) -> String {
            let s = String(n)
            return String(repeating: "0", count: max(0, width - s.count)) + s
        }
        return "\(p(parts.tm_mday))/\(months[Int(parts.tm_mon)])/\(parts.tm_year + 1900):\(p(parts.tm_hour)):\(p(parts.tm_min)):\(p(parts.tm_sec)).\(p(Int32(ms % 1000), 3))"
    }

    func rendered() -> String {
        let side = isFrontend ? "frontend" : "backend"
        let what = kind == .request ? "invalid request" : "invalid response"
        var text = "[\(Self.timestamp(timeMs))] \(side) \(proxyName) (#\(proxyID)): \(what)\n"
        text += "  backend \(backendName ?? "<NONE>") (#\(backendID)), server \(serverName ?? "<NONE>") (#\(serverID)), event #\(event), src \(source)\n"
        text += "  len \(bytes.count) :\n  \n"
        text += Self.dump(bytes)
        return text
    }

    /// Lines of at most 79 columns: `NNNNN  ` then the escaped bytes, a line break after each
    /// `\n`, continuation lines marked `NNNNN+`.
    static func dump(_ bytes: [UInt8]) -> String {
        var out = ""
        var line = ""
        var lineStart = 0
        var continued = false
        func offset(_ n: Int) -> String { let s = String(n); return String(repeating: "0", count: max(0, 5 - s.count)) + s }
        func flush(next: Int, continuation: Bool) {
            out += "  \(offset(lineStart))\(continued ? "+" : " ") \(line)\n"
            line = ""
            lineStart = next
            continued = continuation
        }
        for (i, b) in bytes.enumerated() {
            let piece: String
            switch b {
            case 13: piece = "\\r"
            case 10: piece = "\\n"
            case 9: piece = "\\t"
            case 32...126 where b != 92: piece = String(UnicodeScalar(b))
            case 92: piece = "\\\\"
            default:
                let hex = String(b, radix: 16)
                piece = "\\x" + (hex.count == 1 ? "0" + hex : hex)
            }
            if line.count + piece.count > 70 { flush(next: i, continuation: true) }
            line += piece
            if b == 10 { flush(next: i + 1, continuation: false) }
        }
        if !line.isEmpty { flush(next: bytes.count, continuation: false) }
        return out
    }
}

/// The last error captured for each proxy and direction, and how many there were.
final class ErrorCaptures: Sendable {
    private struct State {
        var latest: [String: CapturedError] = [:]
        var count = 0
    }
    private let state = NIOLockedValueBox(State())
    /// Bytes kept per capture, as HAProxy keeps at most a buffer.
    static let maxBytes = 16_384

    func record(_ make: (Int) -> CapturedError) {
        state.withLockedValue { st in
            st.count += 1
            var e = make(st.count)
            if e.bytes.count > Self.maxBytes { e.bytes = Array(e.bytes.prefix(Self.maxBytes)) }
            st.latest["\(e.proxyID)/\(e.kind == .request ? "req" : "rsp")"] = e
        }
    }

    func total() -> Int { state.withLockedValue { $0.count } }

    func all() -> [CapturedError] {
        state.withLockedValue { st in st.latest.values.sorted { ($0.proxyID, $0.kind == .request ? 0 : 1) < ($1.proxyID, $1.kind == .request ? 0 : 1) } }
    }
}
