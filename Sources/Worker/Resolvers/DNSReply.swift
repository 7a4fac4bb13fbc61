import CCares

#if canImport(Glibc)
import Glibc
#endif

/// The record types Hasp asks for.
enum DNSQueryType: Sendable {
    case a, aaaa, srv

    var code: Int32 {
        switch self {
        case .a: Int32(ns_t_a.rawValue)
        case .aaaa: Int32(ns_t_aaaa.rawValue)
        case .srv: Int32(ns_t_srv.rawValue)
        }
    }
}

/// What an answer said, once decoded by c-ares (the library does the DNS codec: names,
/// compression pointers and their loops, lengths).
enum DNSReply: Equatable, Sendable {
    /// A or AAAA records, and whether a CNAME led to them.
    case addresses([String], viaCNAME: Bool)
    case services([ServiceRecord])
    /// Not a DNS answer that decodes.
    case invalid
    /// A CNAME that leads nowhere.
    case cnameError
    /// It decodes, but without a record of the type asked for.
    case noRecord

    /// Decodes an answer to a question of `type`; never reads past `length`.
    static func decode(_ bytes: UnsafePointer<UInt8>, length: Int, type: DNSQueryType) -> DNSReply {
        guard length > 0, length <= 65_535 else { return .invalid }
        let size = Int32(length)
        switch type {
        case .a, .aaaa:
            var host: UnsafeMutablePointer<hostent>? = nil
            var text: [String] = []
            let status: Int32
            if type == .a {
                var records = [ares_addrttl](repeating: ares_addrttl(), count: 64)
                var count: Int32 = 64
                status = ares_parse_a_reply(bytes, size, &host, &records, &count)
                if status == ARES_SUCCESS { text = records.prefix(Int(max(0, count))).map { record in
                    var address = record.ipaddr
                    return Self.format(family: AF_INET, &address, Int(INET_ADDRSTRLEN))
                } }
            } else {
                var records = [ares_addr6ttl](repeating: ares_addr6ttl(), count: 64)
                var count: Int32 = 64
                status = ares_parse_aaaa_reply(bytes, size, &host, &records, &count)
                if status == ARES_SUCCESS { text = records.prefix(Int(max(0, count))).map { record in
                    var address = record.ip6addr
                    return Self.format(family: AF_INET6, &address, Int(INET6_ADDRSTRLEN))
                } }
            }
            let viaCNAME = host.map { $0.pointee.h_aliases != nil && $0.pointee.h_aliases.pointee != nil } ?? false
            if let host { ares_free_hostent(host) }
            switch status {
            case ARES_SUCCESS where !text.isEmpty: return .addresses(text, viaCNAME: viaCNAME)
            // Records, but none of the type asked: a CNAME chain that ends nowhere.
            case ARES_SUCCESS, ARES_ENODATA: return length >= 12 && (bytes[6] != 0 || bytes[7] != 0) ? .cnameError : .noRecord
            default: return .invalid
            }
        case .srv:
            var reply: UnsafeMutablePointer<ares_srv_reply>? = nil
            let status = ares_parse_srv_reply(bytes, size, &reply)
            defer { if let reply { ares_free_data(reply) } }
            switch status {
            case ARES_SUCCESS:
                var records: [ServiceRecord] = []
                var next = reply
                while let node = next, records.count < 1_024 {
                    if let host = node.pointee.host {
                        records.append(ServiceRecord(target: String(cString: host), port: Int(node.pointee.port),
                                                     weight: Int(node.pointee.weight), priority: Int(node.pointee.priority)))
                    }
                    next = node.pointee.next
                }
                return records.isEmpty ? .noRecord : .services(records)
            case ARES_ENODATA: return .noRecord
            default: return .invalid
            }
        }
    }

    private static func format<T>(family: Int32, _ address: inout T, _ size: Int) -> String {
        var text = [CChar](repeating: 0, count: size)
        _ = withUnsafePointer(to: &address) { inet_ntop(family, $0, &text, socklen_t(size)) }
        return String(decoding: text.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }
}
