/// A proxy's statistics page: the `stats ...` keywords of a `defaults`, `listen`, `frontend`
/// or `backend` section.
///
/// As in HAProxy, any `stats` line turns the page on, and a proxy's first `stats` line starts
/// from fresh settings rather than from those of its `defaults` section (which it keeps, whole,
/// when it has no `stats` line of its own).
public struct StatsSettings: Sendable, Equatable {
    public static let defaultURI = "/haproxy?stats"
    public static let defaultRealm = "HAProxy Statistics"

    /// `stats uri <prefix>`: requests whose URI starts with it get the page.
    public var uri = StatsSettings.defaultURI
    /// `stats realm`: the realm of the 401 answer (the default one when absent).
    public var realm: String? = nil
    /// `stats auth <user>:<password>`, as a userlist of clear passwords.
    public var users = Userlist(name: ".internal-stats-userlist", location: SourceLocation(file: "", line: 0))
    /// `stats refresh <delay>`: the page asks the browser to reload it this often.
    public var refreshSeconds: Int? = nil
    public var hideVersion = false
    public var showLegends = false
    public var showModules = false
    /// `stats show-node [<name>]`: `.some(nil)` shows the global `node` (else the host name).
    public var showNode: String?? = nil
    /// `stats show-desc [<text>]`: `.some(nil)` shows the global `description`.
    public var showDescription: String?? = nil
    /// `stats scope <proxy>|.`: the proxies the page lists (all when empty; "." is this one).
    public var scopes: [String] = []
    /// `stats admin if|unless <cond>`: when one holds, the page offers the server actions.
    public var adminConditions: [RuleCondition] = []
    /// `stats http-request allow|deny|auth`.
    public var httpRequest: [HTTPRule] = []

    public init() {}

    /// The realm a 401 names.
    public var effectiveRealm: String { realm ?? Self.defaultRealm }

    /// The rules the page runs: the `stats http-request` ones, or, with `stats auth`, an
    /// authentication demand for whoever does not give one of its accounts (HAProxy turns
    /// `stats auth` into the same rule).
    public var requiresAuthentication: Bool { !users.users.isEmpty }

    private var signature: [String] {
        [uri, realm ?? "-", users.users.keys.sorted().joined(separator: ","), refreshSeconds.map(String.init) ?? "-",
         "\(hideVersion)\(showLegends)\(showModules)", String(describing: showNode), String(describing: showDescription),
         scopes.joined(separator: ","), adminConditions.map(\.source).joined(separator: ";"),
         String(httpRequest.count)]
    }

    public static func == (a: StatsSettings, b: StatsSettings) -> Bool { a.signature == b.signature }
}
