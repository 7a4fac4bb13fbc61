/// `from <origin>` on `server`, `default-server` and `add server` lines: the settings a server
/// starts from (`none`, `be:[<backend>]`, `srv:[<backend>/]<server or named default-server>`).
extension ConfigParser {
    /// Resolves `value` against `current` (the proxy being defined) and `backend` (other
    /// backends by name). The error is HAProxy's text without a prefix.
    public static func serverOrigin(_ value: String?, current: ProxySettings,
                                    backend: (String) -> ProxySettings?) -> Swift.Result<ServerSettings, DynamicServerRefusal> {
        guard let value, !value.isEmpty else { return .failure(DynamicServerRefusal("from: missing value.")) }
        func named(_ name: String) -> ProxySettings? { name == current.name ? current : backend(name) }
        if value == "none" { return .success(DefaultServerSettings.fresh) }
        if value.hasPrefix("be:") {
            let name = String(value.dropFirst(3))
            guard name.isEmpty || named(name) != nil else {
                return .failure(DynamicServerRefusal("from: unknown backend instance '\(name)'."))
            }
            return .success((name.isEmpty ? current : named(name)!).defaultServer.template)
        }
        if value.hasPrefix("srv:") {
            guard let path = ServerPath(value.dropFirst(4)) else {
                return .failure(DynamicServerRefusal("from: require <backend>/<server>."))
            }
            var owner: ProxySettings? = current
            if let name = path.backend {
                owner = named(name)
                guard owner != nil else { return .failure(DynamicServerRefusal("from: unknown backend '\(name)'.")) }
            }
            guard let proxy = owner else { return .failure(DynamicServerRefusal("from: require <backend>/<server>.")) }
            let name = path.server
            if let server = proxy.servers.first(where: { $0.name == name }) { return .success(server) }
            if let template = proxy.defaultServer.named[name] { return .success(template) }
            return .failure(DynamicServerRefusal("from: unknown server '\(name)' in backend '\(proxy.name)'."))
        }
        return .failure(DynamicServerRefusal("invalid '\(value)' value for 'from' keyword."))
    }

    /// Reads an optional `from <origin>` at `w[index]`: the template and the index after it, or
    /// the error. A second `from` is refused.
    static func originArgument(_ w: [String], at index: Int, current: ProxySettings, fallback: ServerSettings,
                               backend: (String) -> ProxySettings?) -> Swift.Result<(ServerSettings, Int), DynamicServerRefusal> {
        guard index < w.count, w[index] == "from" else { return .success((fallback, index)) }
        switch serverOrigin(index + 1 < w.count ? w[index + 1] : nil, current: current, backend: backend) {
        case .failure(let refusal): return .failure(refusal)
        case .success(let template):
            if index + 2 < w.count, w[index + 2] == "from" {
                return .failure(DynamicServerRefusal("'from' keyword can only be specified once."))
            }
            return .success((template, index + 2))
        }
    }

    /// A template copied onto a new server: its own name, address and place; no fixed id.
    static func instantiate(_ template: ServerSettings, name: String, address: ServerAddress,
                            location: SourceLocation) -> ServerSettings {
        var server = template
        server.name = name
        server.address = address
        server.location = location
        server.id = nil
        return server
    }
}
