import Shared

/// What a request to the statistics page asks for. HAProxy reads options anywhere after the
/// `stats uri` prefix: `;csv`, `;json`, `;up`, `;norefresh`, `;st=<outcome>`, and the page's
/// own scope box (`scope=<text>`).
struct StatsRequest: Equatable {
    enum Format: Equatable { case html, csv, json, jsonSchema, typed }

    var format = Format.html
    /// `;up`: servers that are not up are left out.
    var upOnly = false
    /// `;no-maint`: servers in maintenance are left out.
    var noMaintenance = false
    /// `;norefresh`: no `Refresh` header even with `stats refresh`.
    var noRefresh = false
    /// `;st=<code>`: the outcome of the admin action that redirected here.
    var outcome: StatsAdminOutcome? = nil
    /// `scope=<text>`: only proxies whose name contains it, whatever the case.
    var scope: String? = nil

    /// Whether the page's scope box lets `name` through.
    func scopeIncludes(_ name: String) -> Bool {
        guard let scope else { return true }
        return name.lowercased().contains(scope.lowercased())
    }

    /// Whether `target` asks for the page at `uri`: the prefix matches the path-and-query of
    /// the target (or the whole target when the prefix is not a path), for GET, HEAD or POST.
    static func matches(method: Substring, target: String, uri: String) -> Bool {
        guard method == "GET" || method == "HEAD" || method == "POST" else { return false }
        let subject = uri.hasPrefix("/") ? (URLParts.pathAndQuery(target) ?? Substring(target)) : Substring(target)
        return subject.utf8.starts(with: uri.utf8)
    }

    /// The options in what follows the prefix.
    static func parse(target: String, uri: String) -> StatsRequest {
        let subject = uri.hasPrefix("/") ? (URLParts.pathAndQuery(target) ?? Substring(target)) : Substring(target)
        let rest = subject.utf8.count >= uri.utf8.count ? String(subject.dropFirst(uri.count)) : ""
        var request = StatsRequest()
        if rest.contains(";up") { request.upOnly = true }
        if rest.contains(";no-maint") { request.noMaintenance = true }
        if rest.contains(";norefresh") { request.noRefresh = true }
        if rest.contains(";csv") { request.format = .csv }
        if rest.contains(";typed") { request.format = .typed }
        if rest.contains(";json") { request.format = rest.contains(";json-schema") ? .jsonSchema : .json }
        if let range = rest.range(of: ";st=") {
            // Four letters: a known outcome, else an unexpected one; fewer say nothing.
            let code = String(rest[range.upperBound...].prefix(4))
            if code.count == 4 { request.outcome = StatsAdminOutcome(rawValue: code) ?? .unknown }
        }
        if let range = rest.range(of: "scope=") {
            // Up to 20 characters of a proxy name; anything else in it voids the filter.
            let raw = rest[range.upperBound...].prefix { $0 != "&" && $0 != ";" }
            if !raw.isEmpty, raw.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || "._:-".contains($0)) }) {
                request.scope = String(raw.prefix(20))
            }
        }
        return request
    }

    /// The options as a suffix for the page's own links (`;up`, `;norefresh`, `;no-maint`,
    /// `?scope=`), so that following one keeps the others.
    func suffix(upOnly: Bool? = nil, noRefresh: Bool? = nil, format: Format? = nil) -> String {
        var text = ""
        if upOnly ?? self.upOnly { text += ";up" }
        if noMaintenance { text += ";no-maint" }
        if noRefresh ?? self.noRefresh { text += ";norefresh" }
        switch format ?? .html {
        case .csv: text += ";csv"
        case .json: text += ";json"
        case .jsonSchema: text += ";json-schema"
        case .typed: text += ";typed"
        case .html: break
        }
        if let scope { text += "?scope=" + scope }
        return text
    }
}

/// The outcome of an admin form post, carried by the redirect that follows it (`;st=`).
enum StatsAdminOutcome: String, CaseIterable {
    /// Every server named was changed.
    case done = "DONE"
    /// Some were.
    case partial = "PART"
    /// None was.
    case none = "NONE"
    /// The request was not allowed (`stats admin` did not hold).
    case denied = "DENY"
    /// The request could not be taken (an unsupported method).
    case invalid = "IVAL"
    /// The form could not be read (no backend, no action, unknown backend).
    case parseError = "ERRP"
    /// The form did not fit in a buffer.
    case exceeded = "EXCD"
    /// Anything else went wrong.
    case unknown = "UNKN"
}
