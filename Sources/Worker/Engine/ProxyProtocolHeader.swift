import NIOCore

/// The PROXY protocol header (v1 text, v2 binary) that `bind ... accept-proxy` expects before
/// anything else on a connection: the original client's address, as the relay in front saw it.
enum ProxyProtocolHeader: Equatable {
    case incomplete
    case invalid
    /// `length` bytes form the header; `source` is the client it announces (nil for `LOCAL`
    /// and `UNKNOWN`: the connection's own address stands).
    case complete(source: SocketAddress?, length: Int)

    static let v2Signature: [UInt8] = [0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D, 0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A]

    static func parse(_ buffer: ByteBuffer) -> ProxyProtocolHeader {
        parse(Array(buffer.readableBytesView.prefix(536)))
    }

    static func parse(_ bytes: [UInt8]) -> ProxyProtocolHeader {
        if bytes.first == UInt8(ascii: "P") { return parseV1(bytes) }
        if bytes.first == 0x0D { return parseV2(bytes) }
        return bytes.isEmpty ? .incomplete : .invalid
    }

    /// `PROXY TCP4 <src> <dst> <sport> <dport>\r\n` (at most 107 bytes) or `PROXY UNKNOWN ...`.
    private static func parseV1(_ bytes: [UInt8]) -> ProxyProtocolHeader {
        let prefix = Array("PROXY ".utf8)
        guard bytes.starts(with: prefix.prefix(bytes.count)) else { return .invalid }
        guard let cr = bytes.firstIndex(of: 0x0D) else { return bytes.count >= 107 ? .invalid : .incomplete }
        guard cr + 1 < bytes.count else { return .incomplete }
        guard bytes[cr + 1] == 0x0A, cr + 2 <= 107 else { return .invalid }
        let words = String(decoding: bytes[prefix.count..<cr], as: UTF8.self).split(separator: " ", omittingEmptySubsequences: false)
        guard let proto = words.first else { return .invalid }
        if proto == "UNKNOWN" { return .complete(source: nil, length: cr + 2) }
        guard proto == "TCP4" || proto == "TCP6", words.count == 5, let port = Int(words[3]), (0...65535).contains(port),
              let dport = Int(words[4]), (0...65535).contains(dport),
              let source = try? SocketAddress(ipAddress: String(words[1]), port: port),
              (try? SocketAddress(ipAddress: String(words[2]), port: dport)) != nil else { return .invalid }
        return .complete(source: source, length: cr + 2)
    }

    /// The binary form: signature, version and command, family, length, addresses.
    private static func parseV2(_ bytes: [UInt8]) -> ProxyProtocolHeader {
        let known = min(bytes.count, v2Signature.count)
        guard Array(bytes.prefix(known)) == Array(v2Signature.prefix(known)) else { return .invalid }
        guard bytes.count >= 16 else { return .incomplete }
        let versionCommand = bytes[12]
        guard versionCommand >> 4 == 2, versionCommand & 0x0F <= 1 else { return .invalid }
        let length = Int(bytes[14]) << 8 | Int(bytes[15])
        guard bytes.count >= 16 + length else { return 16 + length > 536 ? .invalid : .incomplete }
        let total = 16 + length
        // LOCAL: health checks of the relay itself; the connection's address stands.
        guard versionCommand & 0x0F == 1 else { return .complete(source: nil, length: total) }
        let body = Array(bytes[16..<total])
        switch bytes[13] {
        case 0x11, 0x12:
            guard body.count >= 12 else { return .invalid }
            let ip = body[0..<4].map(String.init).joined(separator: ".")
            let port = Int(body[8]) << 8 | Int(body[9])
            return .complete(source: try? SocketAddress(ipAddress: ip, port: port), length: total)
        case 0x21, 0x22:
            guard body.count >= 36 else { return .invalid }
            var groups: [String] = []
            for i in stride(from: 0, to: 16, by: 2) { groups.append(String(Int(body[i]) << 8 | Int(body[i + 1]), radix: 16)) }
            let port = Int(body[32]) << 8 | Int(body[33])
            return .complete(source: try? SocketAddress(ipAddress: groups.joined(separator: ":"), port: port), length: total)
        default:
            return .complete(source: nil, length: total)
        }
    }
}
