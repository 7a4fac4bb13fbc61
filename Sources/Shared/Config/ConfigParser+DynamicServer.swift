/// `add server`: the server keywords of the configuration, with HAProxy's limits for servers
/// created at run time.
extension ConfigParser {
    /// Keywords a dynamic server may not use.
    public static let keywordsRefusedForDynamicServers: Set<String> = [
        "enabled", "init-addr", "max-reuse", "namespace", "non-stick", "redir", "resolvers", "resolve-prefer",
        "resolve-net", "resolve-opts", "stick", "socks4", "log-proto", "log-bufsize",
    ]

    /// Keywords listed by `add server help`: what the parser knows, minus the refused ones.
    public static var dynamicServerKeywords: [String] {
        serverKeywords.filter { !keywordsRefusedForDynamicServers.contains($0) }.sorted()
    }

    /// Builds the settings of `add server <b>/<name> <addr> [kw]*` from `words` (the address and
    /// the keywords). The `default-server` line is not applied, as in HAProxy. On error, the
    /// message without any file or line prefix.
    /// `global` gives the TLS defaults (`ssl-server-verify`, `ca-base`, `crt-base`...).
    public static func dynamicServer(name: String, words: [String], proxy: ProxySettings,
                                     global: GlobalSettings = GlobalSettings(),
                                     backend: (String) -> ProxySettings? = { _ in nil }) -> Swift.Result<ServerSettings, DynamicServerRefusal> {
        guard let addressWord = words.first else {
            return .failure(DynamicServerRefusal("'server' expects <name> and <addr>[:<port>] as arguments."))
        }
        var i = 1
        while i < words.count {
            if keywordsRefusedForDynamicServers.contains(words[i]) {
                return .failure(DynamicServerRefusal("'\(words[i])' option is not accepted for dynamic server"))
            }
            i += 1
        }
        let address: ServerAddress
        do { address = try AddressParser.serverAddress(addressWord) } catch {
            return .failure(DynamicServerRefusal("could not resolve address '\(addressWord)'."))
        }
        var parser = ConfigParser()
        parser.file = "CLI"
        parser.config.global = global
        // Unlike configuration servers, a dynamic server ignores `default-server` unless told `from`.
        let line = ["server", name] + words
        let template: ServerSettings
        let first: Int
        switch originArgument(line, at: 3, current: proxy, fallback: DefaultServerSettings.fresh, backend: backend) {
        case .failure(let refusal): return .failure(refusal)
        case .success(let (origin, next)): (template, first) = (origin, next)
        }
        var server = instantiate(template, name: name, address: address, location: SourceLocation(file: "CLI", line: 0))
        let label = "server \(proxy.name)/\(name)"
        guard parser.parseServerKeywords(line, from: first, into: &server, proxy: proxy, label: label),
              parser.checkServerTLS(server, proxy: proxy.name) else {
            let text = parser.diagnostics.last?.text ?? "config : invalid keyword"
            let prefix = "config : [CLI:0] : '\(label)' : "
            return .failure(DynamicServerRefusal(text.hasPrefix(prefix) ? String(text.dropFirst(prefix.count)) : text))
        }
        return .success(server)
    }
}

/// Why `add server` refused its arguments: the reply's text.
public struct DynamicServerRefusal: Error, Sendable {
    public var message: String
    public init(_ message: String) { self.message = message }
}
