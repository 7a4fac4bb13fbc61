import NIOCore
import Shared
#if canImport(Glibc)
import Glibc
#endif

/// The PROXY protocol header a connection to a server starts with (`ProxyProtocolHeader` reads
/// the ones clients send) (`send-proxy`,
/// `send-proxy-v2`, `check-send-proxy`): the client's address and the address it reached, in
/// the text form (version 1) or the binary one (version 2).
enum ProxyHeader {
    /// `source` is the client, `destination` what it connected to. Without two TCP addresses
    /// (a unix socket client, or a health check in version 2), the header says so: `UNKNOWN` in
    /// version 1, the `LOCAL` command in version 2.
    static func encode(_ version: ProxyProtocolVersion, source: SocketAddress?, destination: SocketAddress?, local: Bool = false) -> [UInt8] {
        let pair = addresses(source, destination)
        switch version {
        case .v1:
            guard let (src, dst, sport, dport, v6) = pair else { return Array("PROXY UNKNOWN\r\n".utf8) }
            let text = "PROXY \(v6 ? "TCP6" : "TCP4") \(textual(src, v6)) \(textual(dst, v6)) \(sport) \(dport)\r\n"
            return Array(text.utf8)
        case .v2:
            var out = ProxyProtocolHeader.v2Signature
            guard !local, let (src, dst, sport, dport, v6) = pair else {
                // No two TCP addresses to give (a check, a unix socket client): LOCAL, as
                // haproxy sends it.
                out += [0x20, 0x00, 0x00, 0x00]
                return out
            }
            let body = src + dst + [UInt8(sport >> 8), UInt8(sport & 0xFF), UInt8(dport >> 8), UInt8(dport & 0xFF)]
            out += [0x21, v6 ? 0x21 : 0x11, UInt8(body.count >> 8), UInt8(body.count & 0xFF)]
            return out + body
        }
    }

    /// Both addresses as raw bytes of one family (IPv4 ones mapped into IPv6 when the other is
    /// IPv6), with their ports.
    private static func addresses(_ source: SocketAddress?, _ destination: SocketAddress?)
        -> (src: [UInt8], dst: [UInt8], sport: Int, dport: Int, v6: Bool)? {
        guard let source, let destination, let sport = source.port, let dport = destination.port,
              var src = raw(source), var dst = raw(destination) else { return nil }
        let v6 = src.count == 16 || dst.count == 16
        if v6 {
            if src.count == 4 { src = mapped(src) }
            if dst.count == 4 { dst = mapped(dst) }
        }
        return (src, dst, sport, dport, v6)
    }

    private static func raw(_ address: SocketAddress) -> [UInt8]? {
        switch address {
        case .v4(let a):
            return withUnsafeBytes(of: a.address.sin_addr) { Array($0) }
        case .v6(let a):
            return withUnsafeBytes(of: a.address.sin6_addr) { Array($0) }
        default:
            return nil
        }
    }

    private static func mapped(_ v4: [UInt8]) -> [UInt8] { [UInt8](repeating: 0, count: 10) + [0xFF, 0xFF] + v4 }

    private static func textual(_ bytes: [UInt8], _ v6: Bool) -> String {
        if !v6 { return bytes.map(String.init).joined(separator: ".") }
        if bytes.starts(with: [UInt8](repeating: 0, count: 10) + [0xFF, 0xFF]) {
            return "::ffff:" + bytes[12...].map(String.init).joined(separator: ".")
        }
        // The address's canonical text, as SocketAddress prints it.
        var storage = sockaddr_in6()
        storage.sin6_family = sa_family_t(AF_INET6)
        withUnsafeMutableBytes(of: &storage.sin6_addr) { raw in for (i, b) in bytes.enumerated() { raw[i] = b } }
        return SocketAddress(storage, host: "").ipAddress ?? "::"
    }
}
