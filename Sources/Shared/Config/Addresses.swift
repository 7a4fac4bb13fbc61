#if canImport(Glibc)
import Glibc
#endif

/// One address a `bind` (or `stats socket`) line listens on, with a single port.
public enum ListenAddress: Sendable, Hashable, CustomStringConvertible {
    case ipv4(host: String, port: Int)
    case ipv6(host: String, port: Int)
    case unix(path: String)
    case abstractUnix(name: String)
    case inheritedFD(Int32)

    public var description: String {
        switch self {
        case .ipv4(let h, let p): return "\(h):\(p)"
        case .ipv6(let h, let p): return "[\(h)]:\(p)"
        case .unix(let path): return path
        case .abstractUnix(let name): return "abns@\(name)"
        case .inheritedFD(let fd): return "fd@\(fd)"
        }
    }

    public var port: Int? {
        switch self {
        case .ipv4(_, let p), .ipv6(_, let p): return p
        default: return nil
        }
    }
}

public enum AddressParseError: Error, Equatable, Sendable {
    case invalidAddress(String)
    case invalidPort(String)
    case missingPort(String)
    case invalidPortRange(String)
}

/// Parses HAProxy address syntax (`str2sa_range`): family prefixes, `*`, empty host, IPv6 with the
/// port after the last colon or in brackets, port ranges, unix paths, `fd@<n>`.
public enum AddressParser {
    /// Parses a `bind`-style address that may carry a port range; returns one address per port.
    public static func listenAddresses(_ raw: String) throws(AddressParseError) -> [ListenAddress] {
        // Addresses expand environment variables even outside double quotes.
        let text = LineLexer().expandVariables(raw)
        var rest = Substring(text)
        var family: String? = nil
        if let at = rest.firstIndex(of: "@") {
            family = String(rest[..<at])
            rest = rest[rest.index(after: at)...]
        }
        switch family {
        case "unix":
            return [.unix(path: String(rest))]
        case "abns":
            return [.abstractUnix(name: String(rest))]
        case "fd":
            guard let fd = Int32(rest), fd >= 0 else { throw .invalidAddress(text) }
            return [.inheritedFD(fd)]
        case nil, "ipv4", "ipv6", "tcp", "tcp4", "tcp6":
            break
        default:
            throw .invalidAddress(text)
        }
        if family == nil, rest.hasPrefix("/") {
            return [.unix(path: String(rest))]
        }
        let (host, portText) = try splitHostPort(rest, original: text)
        guard let portText, !portText.isEmpty else { throw .missingPort(text) }
        let ports = try portRange(portText)
        let wantsV6 = family == "ipv6" || family == "tcp6"
        let resolved = try resolveHost(host, preferV6: wantsV6, original: text)
        return ports.map { port in
            resolved.isV6 ? .ipv6(host: resolved.host, port: port) : .ipv4(host: resolved.host, port: port)
        }
    }

    /// Parses a `server` address: `host[:port]`, `ipv4@`/`ipv6@`/`unix@`, or a path.
    public static func serverAddress(_ raw: String) throws(AddressParseError) -> ServerAddress {
        let text = LineLexer().expandVariables(raw)
        var rest = Substring(text)
        if rest.hasPrefix("unix@") { return .unix(path: String(rest.dropFirst(5))) }
        if rest.hasPrefix("/") { return .unix(path: String(rest)) }
        for prefix in ["ipv4@", "ipv6@", "tcp@", "tcp4@", "tcp6@"] where rest.hasPrefix(prefix) {
            rest = rest.dropFirst(prefix.count)
        }
        let (host, portText) = try splitHostPort(rest, original: text)
        var port: Int? = nil
        if let portText, !portText.isEmpty {
            guard let p = Int(portText), (0...65535).contains(p) else { throw .invalidPort(String(portText)) }
            port = p
        }
        // As haproxy: no host, or `*`, is the any address; such a server forwards to the
        // address the client connected to.
        if host.isEmpty || host == "*" { return .inet(host: "0.0.0.0", port: port) }
        if looksNumeric(host) {
            _ = try resolveHost(host, preferV6: false, original: text)
        }
        return .inet(host: String(host), port: port)
    }

    static func splitHostPort(_ text: Substring, original: String) throws(AddressParseError) -> (Substring, Substring?) {
        if text.hasPrefix("[") {
            guard let close = text.firstIndex(of: "]") else { throw .invalidAddress(original) }
            let host = text[text.index(after: text.startIndex)..<close]
            let after = text[text.index(after: close)...]
            if after.isEmpty { return (host, nil) }
            guard after.hasPrefix(":") else { throw .invalidAddress(original) }
            return (host, after.dropFirst())
        }
        guard let colon = text.lastIndex(of: ":") else { return (text, nil) }
        return (text[..<colon], text[text.index(after: colon)...])
    }

    static func portRange(_ text: Substring) throws(AddressParseError) -> [Int] {
        let parts = text.split(separator: "-", omittingEmptySubsequences: false)
        guard parts.count <= 2, let low = Int(parts[0]) else { throw .invalidPort(String(text)) }
        guard (1...65535).contains(low) else { throw .invalidPort(String(text)) }
        guard parts.count == 2 else { return [low] }
        guard let high = Int(parts[1]), (1...65535).contains(high) else { throw .invalidPort(String(parts[1])) }
        guard high >= low else { throw .invalidPortRange(String(text)) }
        return Array(low...high)
    }

    static func looksNumeric(_ host: Substring) -> Bool {
        host.allSatisfy { $0.isNumber || $0 == "." } || host.contains(":")
    }

    struct Resolved { var host: String; var isV6: Bool }

    static func resolveHost(_ host: Substring, preferV6: Bool, original: String) throws(AddressParseError) -> Resolved {
        if host.isEmpty || host == "*" {
            return preferV6 ? Resolved(host: "::", isV6: true) : Resolved(host: "0.0.0.0", isV6: false)
        }
        let h = String(host)
        var v4 = in_addr()
        if inet_pton(AF_INET, h, &v4) == 1 { return Resolved(host: h, isV6: false) }
        var v6 = in6_addr()
        if inet_pton(AF_INET6, h, &v6) == 1 { return Resolved(host: h, isV6: true) }
        if looksNumeric(host) { throw .invalidAddress(h) }
        // A name: resolve it once, now, as HAProxy does at configuration time.
        var hints = addrinfo()
        hints.ai_family = preferV6 ? AF_INET6 : AF_UNSPEC
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        var result: UnsafeMutablePointer<addrinfo>? = nil
        guard getaddrinfo(h, nil, &hints, &result) == 0, let first = result else { throw .invalidAddress(h) }
        defer { freeaddrinfo(result) }
        var buffer = [CChar](repeating: 0, count: Int(INET6_ADDRSTRLEN))
        if first.pointee.ai_family == AF_INET6 {
            var sin6 = first.pointee.ai_addr.withMemoryRebound(to: sockaddr_in6.self, capacity: 1) { $0.pointee }
            inet_ntop(AF_INET6, &sin6.sin6_addr, &buffer, socklen_t(buffer.count))
            return Resolved(host: cText(buffer), isV6: true)
        }
        var sin = first.pointee.ai_addr.withMemoryRebound(to: sockaddr_in.self, capacity: 1) { $0.pointee }
        inet_ntop(AF_INET, &sin.sin_addr, &buffer, socklen_t(buffer.count))
        return Resolved(host: cText(buffer), isV6: false)
    }

    public static func cText(_ buffer: [CChar]) -> String {
        String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }
}
