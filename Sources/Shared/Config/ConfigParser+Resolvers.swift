/// `resolvers` sections: the name servers and timers of DNS resolution, by HAProxy's keywords
/// and messages.
extension ConfigParser {
    static let holdEvents = ["nx", "other", "refused", "timeout", "valid", "obsolete"]

    mutating func parseResolversLine(_ w: [String], _ r: inout ResolversSettings) {
        let keyword = w[0]
        switch keyword {
        case "nameserver":
            guard w.count >= 3 else {
                parsingAlert("'nameserver' expects <name> and <addr>[:<port>] as arguments.")
                return
            }
            if let existing = r.nameservers.first(where: { $0.id == w[1] }) {
                alert("Parsing [\(file):\(lineNumber)]: nameserver '\(w[1])' has same name as another nameserver (declared at \(existing.location)).")
                return
            }
            var address = w[2]
            var overTCP = false
            for prefix in ["udp@", "ipv4@", "ipv6@", "udp4@", "udp6@", "tcp@", "tcp4@", "tcp6@"] where address.hasPrefix(prefix) {
                overTCP = prefix.hasPrefix("tcp")
                address = String(address.dropFirst(prefix.count))
            }
            guard let colon = address.lastIndex(of: ":"), let port = Int(address[address.index(after: colon)...]), (1...65535).contains(port) else {
                parsingAlert("'nameserver \(w[1])' : missing port specification in '\(w[2])'")
                return
            }
            var host = String(address[..<colon])
            if host.hasPrefix("["), host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
            r.nameservers.append(ResolversSettings.Nameserver(id: w[1], host: host, port: port, overTCP: overTCP, location: here))
        case "parse-resolv-conf":
            r.parseResolvConf = true
        case "accepted_payload_size":
            guard w.count >= 2, !w[1].isEmpty else { parsingAlert("'accepted_payload_size' expects <nb> as argument."); return }
            let n = Int(w[1].prefix { $0.isASCII && $0.isNumber }.prefix(9)) ?? 0
            guard (12...65535).contains(n) else {
                parsingAlert("'accepted_payload_size' must be between 12 and 65535 inclusive (was \(w[1])).")
                return
            }
            r.acceptedPayloadSize = n
        case "resolve_retries":
            guard w.count >= 2, !w[1].isEmpty else { parsingAlert("'resolve_retries' expects <nb> as argument."); return }
            r.resolveRetries = Int(w[1].prefix { $0.isASCII && $0.isNumber }.prefix(9)) ?? 0
        case "timeout":
            guard w.count >= 2, w[1] == "retry" || w[1] == "resolve" else {
                parsingAlert("'timeout' expects 'retry' or 'resolve' and <time> as arguments got '\(w.count >= 2 ? w[1] : "")'.")
                return
            }
            guard w.count >= 3 else { parsingAlert("'timeout \(w[1])' expects <time> as argument."); return }
            do {
                let ms = try Units.milliseconds(w[2])
                if w[1] == "retry" { r.timeoutRetryMs = ms } else { r.timeoutResolveMs = ms }
            } catch {
                alert("parsing [\(file):\(lineNumber)]: unexpected character '\(timeErrorCharacter(error))' in argument to <timeout \(w[1])>.")
            }
        case "hold":
            guard w.count >= 3 else {
                parsingAlert("'hold' expects an <event> and a <time> as arguments.")
                alert("<event> can be either 'valid', 'nx', 'refused', 'timeout', or 'other'")
                return
            }
            guard Self.holdEvents.contains(w[1]) else {
                parsingAlert("'hold' unknown <event>: '\(w[1])', expects either 'nx', 'timeout', 'valid', 'obsolete' or 'other'.")
                return
            }
            do { r.hold[w[1]] = try Units.milliseconds(w[2]) } catch {
                alert("parsing [\(file):\(lineNumber)]: unexpected character '\(timeErrorCharacter(error))' in argument to <hold>.")
            }
        case "resolution_pool_size":
            parsingAlert("'resolution_pool_size' directive is not supported anymore (it never appeared in a stable release).")
        default:
            parsingAlert("unknown keyword '\(keyword)' in 'resolvers' section")
        }
    }

    /// At the end: sections without name servers, and servers naming a section that does not
    /// exist.
    mutating func checkResolvers() {
        // HAProxy checks sections once the files parsed without errors.
        let parsedCleanly = !diagnostics.contains { $0.level == .alert }
        let system = Self.systemNameservers()
        for (name, section) in config.resolvers where section.parseResolvConf {
            var section = section
            for address in system where !section.nameservers.contains(where: { $0.id == address }) {
                section.nameservers.append(ResolversSettings.Nameserver(
                    id: address, host: address, port: 53, overTCP: false, location: SourceLocation(file: Self.resolvConf, line: 0)))
            }
            config.resolvers[name] = section
        }
        // Like HAProxy 2.6, a section `default` of the system's name servers exists unless the
        // configuration declares one: servers may name it, and `show resolvers` lists it.
        if config.resolvers["default"] == nil, !system.isEmpty {
            var implicit = ResolversSettings(name: "default", location: SourceLocation(file: Self.resolvConf, line: 0))
            implicit.order = config.resolvers.count
            implicit.parseResolvConf = true
            implicit.nameservers = system.map {
                ResolversSettings.Nameserver(id: $0, host: $0, port: 53, overTCP: false, location: implicit.location)
            }
            config.resolvers["default"] = implicit
        }
        for r in config.resolvers.values.sorted(by: { $0.location.line < $1.location.line }) where parsedCleanly && r.nameservers.isEmpty && !r.parseResolvConf {
            warn("resolvers '\(r.name)' [\(r.location)] has no nameservers configured!")
        }
        if let name = httpClientResolvers, config.resolvers[name] == nil {
            alert("Proxy '<HTTPCLIENT>': Can't find resolvers section '\(name)' for do-resolve action.")
        }
        for proxy in config.proxies where proxy.kind != .defaults {
            for server in proxy.servers {
                guard let name = server.resolvers, config.resolvers[name] == nil else { continue }
                alert("\(proxy.kind == .listen ? "proxy" : proxy.kind.rawValue) '\(proxy.name)', server '\(server.name)': unable to find required resolvers '\(name)'")
            }
        }
    }

    /// `init-addr` at start, as HAProxy checks it once the configuration is read: the methods
    /// in order (by default `last,libc`, then `none` for a server with `resolvers`); a name the
    /// system cannot resolve falls to the next; when none is left, the configuration is refused.
    mutating func checkInitialAddresses() {
        // HAProxy gets there only with a configuration free of errors.
        guard !diagnostics.contains(where: { $0.level == .alert }) else { return }
        var failed = false
        for proxy in config.proxies where proxy.kind != .defaults {
            for server in proxy.servers {
                guard case .inet(let host, _) = server.address, !host.hasPrefix("_"), IPNetwork.parse(host) == nil || host.contains("/") else { continue }
                let prefix = "[\(server.location)] : 'server \(proxy.name)/\(server.name)' : could not resolve address '\(host)'"
                let methods = server.initAddr ?? (server.resolvers != nil ? ["last", "libc", "none"] : ["last", "libc"])
                var missed = false
                var settled = false
                for method in methods {
                    switch method {
                    case "last":
                        continue
                    case "libc":
                        if HostLookup.resolves(host) { settled = true } else { missed = true }
                    case "none":
                        if missed { warn(prefix + ", disabling server.") }
                        settled = true
                    default:
                        if missed { warn(prefix + ", falling back to configured address.") }
                        settled = true
                    }
                    if settled { break }
                }
                if !settled {
                    alert(prefix + ".")
                    failed = true
                }
            }
        }
        if failed { alert("Failed to initialize server(s) addr.") }
    }

    static let resolvConf = "/etc/resolv.conf"

    /// The name servers of /etc/resolv.conf (read once, when the configuration is), in order.
    static func systemNameservers() -> [String] {
        guard let bytes = FileReader.read(resolvConf) else { return [] }
        var found: [String] = []
        for line in String(decoding: bytes, as: UTF8.self).split(separator: "\n") {
            let words = line.split(whereSeparator: { $0 == " " || $0 == "\t" })
            guard words.count >= 2, words[0] == "nameserver" else { continue }
            let address = String(words[1])
            guard IPNetwork.parse(address) != nil, !address.contains("/"), !found.contains(address) else { continue }
            found.append(address)
        }
        return found
    }

    /// `server-template <prefix> <num | low-high> <fqdn>[:<port>] [settings]`: servers named
    /// `<prefix><n>`, each for one answer of the name (slots without one wait in maintenance).
    mutating func parseServerTemplate(_ w: [String], _ p: inout ProxySettings) {
        guard w.count >= 4 else {
            alert("[\(file):\(lineNumber)] : 'server-template' expects <prefix> <nb | range> <addr>[:<port>] as arguments.")
            return
        }
        let range = w[2].split(separator: "-", omittingEmptySubsequences: false)
        let low: Int, high: Int
        if range.count == 1, let n = Int(range[0]), n > 0 {
            (low, high) = (1, n)
        } else if range.count == 2, let a = Int(range[0]), let b = Int(range[1]), a > 0, a <= b {
            (low, high) = (a, b)
        } else {
            alert("[\(file):\(lineNumber)] : Wrong server-template number or range arg '\(w[2])'.")
            return
        }
        guard high - low < 10_000 else {
            alert("[\(file):\(lineNumber)] : Wrong server-template number or range arg '\(w[2])'.")
            return
        }
        let before = p.servers.count
        for n in low...high {
            var line = w
            line[0] = "server"
            line[1] = w[1] + String(n)
            line.remove(at: 2)
            parseServer(line, &p)
            guard p.servers.count > before + n - low else { return }
            p.servers[p.servers.count - 1].templateIndex = n - low
        }
    }
}
