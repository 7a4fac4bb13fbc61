/// What runs once every file is read: the checks and resolutions that need the whole
/// configuration (error-file sections, table references, `unix-bind`), and the final verdict.
extension ConfigParser {
    /// `errorfiles <name>`: the section's pages, under the proxy's own `errorfile`s.
    mutating func resolveErrorFileSections() {
        for index in config.proxies.indices {
            for use in config.proxies[index].errorFileSections {
                guard let pages = config.httpErrors[use.section] else {
                    diagnostics.append(Diagnostic(.alert, "config : parsing [\(use.location)] : unknown http-errors section '\(use.section)' in proxy '\(config.proxies[index].name)'."))
                    continue
                }
                for (code, bytes) in pages where use.codes.isEmpty || use.codes.contains(code) {
                    if config.proxies[index].errorFiles[code] == nil { config.proxies[index].errorFiles[code] = bytes }
                }
            }
        }
    }

    /// Every `track` names an existing server that is checked (or tracks one that is).
    mutating func checkTracking() {
        for proxy in config.proxies where proxy.capabilities.contains(.backend) {
            for server in proxy.servers {
                guard let spec = server.track else { continue }
                let path = ServerPath(spec)
                let prefix = "config : \(proxy.kind.rawValue) '\(proxy.name)', server '\(server.name)': "
                let ownerName = path?.backend(or: proxy.name) ?? proxy.name
                guard let owner = config.proxies.first(where: { $0.name == ownerName && $0.capabilities.contains(.backend) }) else {
                    diagnostics.append(Diagnostic(.alert, prefix + "unable to find required proxy '\(ownerName)' for tracking."))
                    continue
                }
                let targetName = path?.server ?? spec
                guard var target = owner.servers.first(where: { $0.name == targetName }) else {
                    diagnostics.append(Diagnostic(.alert, prefix + "unable to find required server '\(targetName)' for tracking."))
                    continue
                }
                // Follow the chain: the server at its end must be checked.
                var hops = 0
                while let next = target.track, let p = ServerPath(next), hops < 16 {
                    let o = p.backend.map { name in config.proxies.first { $0.name == name } } ?? owner
                    guard let t = o?.servers.first(where: { $0.name == p.server }) else { break }
                    target = t
                    hops += 1
                }
                if hops >= 16 {
                    diagnostics.append(Diagnostic(.alert, prefix + "unable to track \(ownerName)/\(targetName): loop detected."))
                } else if !target.check && !target.checks.agent {
                    diagnostics.append(Diagnostic(.alert, prefix + "unable to use \(ownerName)/\(targetName) for tracking as it does not have any check nor agent enabled."))
                }
            }
        }
    }

    /// `unix-bind`: its prefix goes before every UNIX socket path of `bind` lines and stats
    /// sockets, and its mode and owner apply where a line sets none.
    mutating func applyUnixBind() {
        let settings = config.global.unixBind
        guard settings != UnixBindSettings() else { return }
        func prefixed(_ address: ListenAddress) -> ListenAddress {
            guard let prefix = settings.prefix, case .unix(let path) = address else { return address }
            return .unix(path: prefix + path)
        }
        for p in config.proxies.indices {
            for b in config.proxies[p].binds.indices {
                var bind = config.proxies[p].binds[b]
                guard bind.addresses.contains(where: { if case .unix = $0 { return true } else { return false } }) else { continue }
                bind.addresses = bind.addresses.map(prefixed)
                bind.unixMode = bind.unixMode ?? settings.mode
                bind.unixUser = bind.unixUser ?? settings.user
                bind.unixGroup = bind.unixGroup ?? settings.group
                config.proxies[p].binds[b] = bind
            }
        }
        for s in config.global.statsSockets.indices {
            config.global.statsSockets[s].address = prefixed(config.global.statsSockets[s].address)
        }
    }

    mutating func finish() {
        closeSection()
        applyUnixBind()
        checkTLSBinds()
        for name in erroredFiles {
            diagnostics.append(Diagnostic(.alert, "config : Error(s) found in configuration file : \(name)"))
        }
        for index in config.proxies.indices where config.proxies[index].capabilities.contains(.frontend) {
            let proxy = config.proxies[index]
            let references = proxy.defaultBackend.map { [($0, proxy.defaultBackendLocation ?? proxy.location, "default_backend")] } ?? []
            let switching = proxy.rules.useBackends.compactMap { rule in rule.fixedName.map { ($0, rule.location, "use_backend") } }
            for (target, location, what) in references + switching {
                guard let backend = config.proxies.first(where: { $0.name == target && $0.capabilities.contains(.backend) }) else {
                    diagnostics.append(Diagnostic(.alert, "config : parsing [\(location)] : Proxy '\(proxy.name)': unable to find required \(what): '\(target)'."))
                    continue
                }
                // An HTTP frontend cannot hand its streams to a TCP backend; a TCP frontend may
                // use an HTTP backend: its connections are then parsed as HTTP (HAProxy's
                // implicit upgrade).
                if proxy.mode == .http, backend.mode == .tcp {
                    let use = what == "default_backend" ? "as its default backend" : "in a 'use_backend' rule"
                    let kind = proxy.kind == .listen ? "proxy" : proxy.kind.rawValue
                    diagnostics.append(Diagnostic(.alert, "config : http \(kind) '\(proxy.name)' (\(proxy.location)) tries to use incompatible tcp backend '\(backend.name)' (\(backend.location)) \(use) (see 'mode')."))
                }
            }
            if proxy.mode == .tcp, proxy.options.httpLog, let location = proxy.options.httpLogLocation {
                warn("parsing [\(location)] : 'option httplog' not usable with \(proxy.kind == .listen ? "proxy" : proxy.kind.rawValue) '\(proxy.name)' (needs 'mode http'). Falling back to 'option tcplog'.")
                config.proxies[index].options.httpLog = false
                config.proxies[index].options.tcpLog = true
                config.proxies[index].logging.kind = .tcp
                config.proxies[index].logging.format = defaultLogFormat(.tcp)
            }
            if proxy.binds.isEmpty && proxy.kind == .frontend {
                warn("\(proxy.kind.rawValue) '\(proxy.name)' has no 'bind' directive. Please declare it as a backend if this was intended.")
            }
        }
        resolveErrorFileSections()
        checkTracking()
        checkStickTables()
        checkResolvers()
        checkStatsPages()
        for proxy in config.proxies {
            let t = proxy.timeouts
            let needsClient = proxy.capabilities.contains(.frontend)
            let needsServer = proxy.capabilities.contains(.backend)
            if (needsClient && (t.client ?? 0) == 0) || (needsServer && ((t.connect ?? 0) == 0 || (t.server ?? 0) == 0)) {
                let kind = proxy.kind == .listen ? "proxy" : proxy.kind.rawValue
                warn("""
                missing timeouts for \(kind) '\(proxy.name)'.
                   | While not properly invalid, you will certainly encounter various problems
                   | with such a configuration. To fix this, please ensure that all following
                   | timeouts are set to a non-zero value: 'client', 'connect', 'server'.
                """)
            }
        }
        checkInitialAddresses()
        if diagnostics.contains(where: { $0.level == .alert }) {
            diagnostics.append(Diagnostic(.alert, "config : Fatal errors found in configuration."))
        }
    }
}
