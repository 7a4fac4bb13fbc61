import NIOCore

/// The PROXY protocol header (v1 text, v2 binary) that `bind ... accept-proxy` expects before
/// anything else on a connection: the original client's address, as the relay in front saw it.
enum ProxyProtocolHeader: Equatable {
    case incomplete
    case invalid
    /// `length` bytes form the header; `source` is the client it announces and `destination`
    /// the address that client reached (nil for `LOCAL` and `UNKNOWN`: the connection's own
    /// addresses stand).
    case complete(source: SocketAddress?, destination: SocketAddress?, length: Int)

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
        if proto == "UNKNOWN" { return .complete(source: nil, destination: nil, length: cr + 2) }
        guard proto == "TCP4" || proto == "TCP6", words.count == 5, let port = Int(words[3]), (0...65535).contains(port),
              let dport = Int(words[4]), (0...65535).contains(dport),
              let source = try? SocketAddress(ipAddress: String(words[1]), port: port),
              let destination = try? SocketAddress(ipAddress: String(words[2]), port: dport) else { return .invalid }
        return .complete(source: source, destination: destination, length: cr + 2)
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
        guard versionCommand & 0x0F == 1 else { return .complete(source: nil, destination: nil, length: total) }
        let body = Array(bytes[16..<total])
        switch bytes[13] {
        case 0x11, 0x12:
            guard body.count >= 12 else { return .invalid }
            func ip(_ at: Int) -> String { body[at..<at + 4].map(String.init).joined(separator: ".") }
            let port = Int(body[8]) << 8 | Int(body[9])
            let dport = Int(body[10]) << 8 | Int(body[11])
            return .complete(source: try? SocketAddress(ipAddress: ip(0), port: port),
                             destination: try? SocketAddress(ipAddress: ip(4), port: dport), length: total)
        case 0x21, 0x22:
            guard body.count >= 36 else { return .invalid }
            func ip(_ at: Int) -> String {
                stride(from: at, to: at + 16, by: 2).map { String(Int(body[$0]) << 8 | Int(body[$0 + 1]), radix: 16) }.joined(separator: ":")
            }
            let port = Int(body[32]) << 8 | Int(body[33])
            let dport = Int(body[34]) << 8 | Int(body[35])
            return .complete(source: try? SocketAddress(ipAddress: ip(0), port: port),
                             destination: try? SocketAddress(ipAddress: ip(16), port: dport), length: total)
        default:
            return .complete(source: nil, destination: nil, length: total)
        }
    }
}
