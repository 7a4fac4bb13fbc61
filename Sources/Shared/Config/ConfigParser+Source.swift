#if canImport(Glibc)
import Glibc
#endif

/// `source <addr>[:<port>] [usesrc { <addr>[:<port>] | client | clientip }]`, on a proxy or a
/// server line: the local address a connection to a server is made from. `usesrc` makes it a
/// foreign address (transparent proxying, `IP_TRANSPARENT`), which needs `cap_net_admin` or
/// `cap_net_raw`: root, or `setcap` once workers run as `user`.
public struct ConnectionSource: Sendable, Equatable {
    public enum Transparent: Sendable, Equatable {
        /// The client's address and port.
        case client
        /// The client's address, any port.
        case clientIP
        /// A fixed foreign address.
        case address(host: String, port: Int)
    }

    /// A numeric IPv4 or IPv6 address.
    public var host: String
    /// 0: any.
    public var port: Int
    public var transparent: Transparent?

    /// Whether connections need the `IP_TRANSPARENT` privilege (HAProxy's "full privileges").
    public var needsNetworkAdmin: Bool { transparent != nil }
}

extension ConfigParser {
    /// Parses `source` and its options from `w[start]` on (`w[start - 1]` is `source`). `label` is
    /// the server's message prefix (nil on a proxy line). Nil after an error was reported.
    mutating func parseConnectionSource(_ w: [String], from start: Int, label: String?) -> ConnectionSource? {
        func fail(_ text: String) -> ConnectionSource? {
            if let label { alert("[\(file):\(lineNumber)] : '\(label)' : \(text)") } else { parsingAlert(text) }
            return nil
        }
        guard start < w.count, !w[start].isEmpty else {
            return fail("'source' expects <addr>[:<port>], and optionally 'usesrc' <addr>, and 'interface' <name>.")
        }
        guard let (host, port) = Self.sourceAddress(w[start]) else {
            return fail("'source \(w[start])' : invalid address: '\(w[start])'")
        }
        var source = ConnectionSource(host: host, port: port, transparent: nil)
        var i = start + 1
        while i < w.count {
            switch w[i] {
            case "usesrc":
                guard i + 1 < w.count, !w[i + 1].isEmpty else {
                    return fail("'usesrc' expects <addr>[:<port>], 'client', or 'clientip' as argument.")
                }
                let what = w[i + 1]
                if what == "client" { source.transparent = .client }
                else if what == "clientip" { source.transparent = .clientIP }
                else if what.hasPrefix("hdr_ip(") { return fail("'usesrc \(what)' is not supported by Hasp yet.") }
                else if let (h, p) = Self.sourceAddress(what) { source.transparent = .address(host: h, port: p) }
                else { return fail("'usesrc \(what)' : invalid address: '\(what)'") }
                i += 2
            case "interface":
                guard i + 1 < w.count, !w[i + 1].isEmpty else { return fail("'source' : missing interface name.") }
                // SO_BINDTODEVICE is not wired: HAProxy's message for a build without it.
                return fail("'source' : 'interface' option not implemented.")
            default:
                return fail("'source' only supports optional keywords 'interface' and 'usesrc'.")
            }
        }
        return source
    }

    /// `addr[:port]`, `ipv4@addr[:port]`, `ipv6@addr[:port]`, `[v6]:port`, `*` for any.
    static func sourceAddress(_ text: String) -> (host: String, port: Int)? {
        var rest = Substring(text)
        var family: Int32? = nil
        if rest.hasPrefix("ipv4@") { rest = rest.dropFirst(5); family = AF_INET }
        else if rest.hasPrefix("ipv6@") { rest = rest.dropFirst(5); family = AF_INET6 }
        var host = rest
        var port = 0
        if rest.hasPrefix("[") {
            guard let close = rest.firstIndex(of: "]") else { return nil }
            host = rest[rest.index(after: rest.startIndex)..<close]
            let after = rest[rest.index(after: close)...]
            if !after.isEmpty {
                guard after.hasPrefix(":"), let p = Int(after.dropFirst()), (0...65535).contains(p) else { return nil }
                port = p
            }
        } else if rest.filter({ $0 == ":" }).count == 1, let colon = rest.lastIndex(of: ":") {
            host = rest[..<colon]
            guard let p = Int(rest[rest.index(after: colon)...]), (0...65535).contains(p) else { return nil }
            port = p
        }
        if host == "*" || host.isEmpty { host = family == AF_INET6 ? "::" : "0.0.0.0" }
        var buffer = [UInt8](repeating: 0, count: 16)
        let v4 = inet_pton(AF_INET, String(host), &buffer) == 1
        let v6 = !v4 && inet_pton(AF_INET6, String(host), &buffer) == 1
        guard v4 || v6 else { return nil }
        if family == AF_INET && !v4 || family == AF_INET6 && !v6 { return nil }
        return (String(host), port)
    }
}
