/// `cookie <name> [rewrite|insert|prefix] [indirect] [nocache] ...`: a backend's cookie-based
/// persistence (HAProxy's `ck_opts`).
public struct CookieSettings: Sendable, Equatable {
    /// How the cookie reaches the client. `passive`: the application sets it, the proxy only
    /// reads it.
    public enum Mode: String, Sendable {
        case passive, rewrite, insert, prefix
    }

    public var name: String
    public var mode: Mode = .passive
    /// Clients with a valid cookie get no new one, and in insert mode the server never sees it.
    public var indirect = false
    /// An inserted cookie marks a cacheable response `Cache-control: private`.
    public var noCache = false
    /// Insert only in responses to POST requests.
    public var postOnly = false
    /// A cookie the server sets itself is left alone.
    public var preserve = false
    public var httpOnly = false
    public var secure = false
    /// Servers without a `cookie` value get one from the backend's `dynamic-cookie-key`.
    public var dynamic = false
    public var domains: [String] = []
    /// `maxidle` / `maxlife`, in seconds (0: no limit; the cookie then carries no date).
    public var maxIdleSeconds: Int64 = 0
    public var maxLifeSeconds: Int64 = 0
    /// `attr <value>`: extra attributes appended to an inserted cookie.
    public var attributes: [String] = []

    public init(name: String) { self.name = name }

    /// What follows `; path=/` in an inserted cookie (domains, flags, attributes), as HAProxy
    /// writes it.
    public var insertedAttributes: String {
        var text = ""
        for domain in domains { text += "; domain=" + domain }
        if httpOnly { text += "; HttpOnly" }
        if secure { text += "; Secure" }
        for attribute in attributes { text += "; " + attribute }
        return text
    }
}

/// `force-persist if <cond>` / `ignore-persist if <cond>`: the first matching rule decides.
public struct PersistRule: Sendable {
    public enum Kind: String, Sendable { case force = "force-persist", ignore = "ignore-persist" }
    public let kind: Kind
    public let condition: RuleCondition
    public let location: SourceLocation

    public init(kind: Kind, condition: RuleCondition, location: SourceLocation) {
        self.kind = kind
        self.condition = condition
        self.location = location
    }
}
