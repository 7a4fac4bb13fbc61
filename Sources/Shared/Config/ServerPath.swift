/// `[<backend>/]<server>`: how the configuration (`track`, `from srv:`) and the CLI (`set server`,
/// `add server`, `wait srv-removable`...) name a server. Split at the first slash.
public struct ServerPath: Sendable, Equatable {
    /// Nil when the text names only a server (the caller's own backend applies).
    public var backend: String?
    public var server: String

    /// Nil when there is no server name (empty text, or nothing after the slash).
    public init?<S: StringProtocol>(_ text: S) {
        if let slash = text.firstIndex(of: "/") {
            backend = String(text[..<slash])
            server = String(text[text.index(after: slash)...])
        } else {
            backend = nil
            server = String(text)
        }
        if server.isEmpty { return nil }
    }

    /// The backend named, or `current` when the path names only a server.
    public func backend(or current: String) -> String { backend ?? current }
}
