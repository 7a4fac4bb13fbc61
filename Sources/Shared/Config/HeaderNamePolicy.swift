/// `option http-restrict-req-hdr-names preserve|delete|reject`.
public enum HeaderNamePolicy: String, Sendable, Equatable {
    case preserve, delete, reject

    /// Whether a request header name keeps to `[A-Za-z0-9-]`.
    public static func isPlain(_ name: String) -> Bool {
        name.utf8.allSatisfy { ($0 >= 0x30 && $0 <= 0x39) || ($0 | 0x20 >= 0x61 && $0 | 0x20 <= 0x7a) || $0 == 0x2d }
    }
}
