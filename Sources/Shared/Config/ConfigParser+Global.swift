#if canImport(Glibc)
import Glibc
#endif

/// The `global` section.
extension ConfigParser {
    // MARK: - global

    static let globalKeywords = [
        "maxconn", "nbthread", "thread-groups", "pidfile", "daemon", "quiet", "zero-warning", "log", "stats",
        "hard-stop-after", "mworker-max-reloads", "master-worker", "user", "group", "uid", "gid", "chroot",
        "setcap",
        "tune.bufsize", "tune.maxrewrite", "setenv", "presetenv", "unsetenv", "resetenv", "ca-base", "crt-base",
        "ssl-default-bind-ciphers", "ssl-default-bind-ciphersuites", "ssl-default-bind-options",
        "ssl-default-server-ciphers", "ssl-default-server-ciphersuites", "ssl-default-server-options",
        "ssl-dh-param-file", "tune.ssl.default-dh-param", "log-send-hostname", "log-tag", "node", "description",
        "spread-checks", "localpeer", "insecure-fork-wanted", "expose-experimental-directives", "nbproc",
        "hasp.idle-handover", "hasp.runtime-state-handoff", "server-state-file", "server-state-base", "cpu-map", "ulimit-n", "busy-polling",
        "tune.http.maxhdr", "ssl-server-verify", "max-spread-checks", "unix-bind", "profiling.tasks",
        "tune.idle-pool.shared", "tune.vars.global-max-size", "tune.vars.proc-max-size", "tune.vars.reqres-max-size",
        "tune.vars.sess-max-size", "tune.vars.txn-max-size", "ssl-default-bind-curves", "ssl-default-server-curves",
        "tune.ssl.cachesize", "tune.ssl.lifetime", "tune.ssl.maxrecord",
        "httpclient.ssl.verify", "httpclient.ssl.ca-file", "httpclient.resolvers.id", "httpclient.resolvers.prefer", "default-path",
        "set-var", "set-var-fmt",
    ]

    static let globalAcceptedSilently: Set<String> = [
        "insecure-fork-wanted",
        "expose-experimental-directives", "cpu-map", "ulimit-n",
        "busy-polling",
    ]

    mutating func parseGlobal(_ w: [String]) {
        let k = w[0]
        if parseGlobalTLS(w) { return }
        func intArg(_ name: String) -> Int? {
            guard w.count >= 2, let n = Int(w[1]) else {
                parsingAlert("'\(name)' expects an integer argument.")
                return nil
            }
            return n
        }
        switch k {
        case "log-send-hostname":
            config.global.logHostname = w.count >= 2 ? w[1] : LogDate.hostname
        case "localpeer":
            guard w.count >= 2, !w[1].isEmpty else { parsingAlert("'localpeer' expects a name as an argument."); return }
            if localPeerOption != nil {
                parsingWarning("'localpeer' ignored since it is already set by using the '-L' command line argument.")
            } else if !config.peers.isEmpty {
                parsingWarning("'localpeer' ignored since it is used after 'peers' section.")
            } else {
                config.localPeer = w[1]
                environment.set("HAPROXY_LOCALPEER", w[1])
            }
        case "node":
            config.global.node = w.count >= 2 ? w[1] : ""
        case "description":
            config.global.processDescription = w.dropFirst().joined(separator: " ")
        case "log-tag":
            guard w.count >= 2, !w[1].isEmpty else { parsingAlert("'log-tag' expects a tag for use in syslog."); return }
            config.global.logTag = w[1]
        case "spread-checks":
            guard let n = intArg(k) else { return }
            guard (0...50).contains(n) else {
                parsingAlert("'spread-checks' needs a positive value in range 0..50.")
                return
            }
            config.global.spreadChecks = n
        case "maxconn":
            if let n = intArg(k) { config.global.maxconn = n }
        case "nbthread":
            guard w.count >= 2, let n = Int(w[1]), n >= 1 else {
                parsingAlert("'nbthread' passed a missing or unparsable integer value in '\(w.count > 1 ? w[1] : "")'")
                return
            }
            guard n <= 4096 else {
                parsingAlert("'nbthread' value '\(n)' is too large (max 4096)")
                return
            }
            config.global.nbthread = n
        case "thread-groups":
            guard w.count >= 2, let n = Int(w[1]), n >= 1 else {
                parsingAlert("'thread-groups' passed a missing or unparsable integer value in '\(w.count > 1 ? w[1] : "")'")
                return
            }
            config.global.threadGroups = n
        case "pidfile":
            guard w.count >= 2 else { parsingAlert("'pidfile' expects a file name as an argument."); return }
            config.global.pidfile = w[1]
        case "daemon": config.global.daemon = true
        case "quiet": config.global.quiet = true
        case "zero-warning": config.global.zeroWarning = true
        case "log":
            guard w.count >= 2 else {
                parsingAlert("'log' expects either <address[:port]> and <facility> or 'global' as arguments.")
                return
            }
            if let target = parseLogTarget(w) { config.global.logTargets.append(target) }
        case "stats":
            parseStats(w)
        case "hard-stop-after":
            guard w.count >= 2 else { parsingAlert("'hard-stop-after' expects <time> as argument."); return }
            do { config.global.hardStopAfterMs = try Units.milliseconds(w[1]) } catch {
                parsingAlert("unexpected character '\(timeErrorCharacter(error))' in argument to <hard-stop-after>.")
            }
        case "mworker-max-reloads":
            guard w.count >= 2, let n = Int(w[1]), n >= 0 else {
                parsingAlert("'mworker-max-reloads' expects an integer argument.")
                return
            }
            config.global.mworkerMaxReloads = n
        case "master-worker":
            // The configuration's way to ask for -W (HAProxy 1.8 to 3.x).
            if w.count == 1 {
                config.global.masterWorker = true
            } else if w[1] == "no-exit-on-failure" {
                config.global.masterWorker = true
                config.global.noExitOnFailure = true
            } else {
                parsingAlert("'master-worker' only supports 'no-exit-on-failure' option.")
            }
        case "user", "uid":
            guard w.count >= 2 else { parsingAlert("'\(k)' expects an argument."); return }
            config.global.user = w[1]
        case "group", "gid":
            guard w.count >= 2 else { parsingAlert("'\(k)' expects an argument."); return }
            config.global.group = w[1]
        case "set-var", "set-var-fmt":
            parseGlobalVariable(w)
        case "chroot":
            guard w.count >= 2 else { parsingAlert("'chroot' expects a directory as an argument."); return }
            config.global.chroot = w[1]
        case "setcap":
            switch Capability.parseList(w.count >= 2 ? w[1] : "") {
            case .success(let capabilities):
                for c in capabilities where !config.global.capabilities.contains(c) { config.global.capabilities.append(c) }
            case .failure(let problem):
                parsingAlert("'setcap' : \(problem.message) Supported ones are: \(Capability.supportedList).")
            }
        case "tune.bufsize":
            guard w.count >= 2, let n = Units.size(w[1]), n >= 1024 else {
                parsingAlert("'tune.bufsize' expects a positive integer argument.")
                return
            }
            config.global.bufferSize = n
        case "tune.vars.global-max-size", "tune.vars.proc-max-size", "tune.vars.reqres-max-size",
             "tune.vars.sess-max-size", "tune.vars.txn-max-size":
            guard w.count >= 2, let n = Units.size(w[1]), n >= 0 else {
                parsingAlert("'\(k)' expects a positive integer argument.")
                return
            }
            switch k {
            case "tune.vars.proc-max-size", "tune.vars.global-max-size": config.global.variableLimits[.proc] = n
            case "tune.vars.sess-max-size": config.global.variableLimits[.sess] = n
            case "tune.vars.txn-max-size": config.global.variableLimits[.txn] = n
            default:
                config.global.variableLimits[.req] = n
                config.global.variableLimits[.res] = n
            }
        case "tune.maxrewrite":
            guard let n = intArg(k), n >= 0 else { return }
            config.global.maxRewrite = n
        case "setenv", "presetenv":
            guard w.count >= 3 else { parsingAlert("'\(k)' expects a name and a value."); return }
            if k == "setenv" || environment.get(w[1]) == nil { environment.set(w[1], w[2]) }
        case "unsetenv":
            for name in w.dropFirst() { environment.unset(name) }
        case "resetenv":
            environment.keepOnly(Set(w.dropFirst()))
        case "server-state-file", "server-state-base":
            guard w.count >= 2 else {
                parsingAlert("'\(k)' expects one argument: \(k == "server-state-file" ? "a file path" : "a directory path").")
                return
            }
            if k == "server-state-file" { config.global.serverStateFile = w[1] } else { config.global.serverStateBase = w[1] }
        case "hasp.runtime-state-handoff":
            guard w.count == 2, w[1] == "on" || w[1] == "off" else {
                parsingAlert("'hasp.runtime-state-handoff' expects 'on' or 'off'.")
                return
            }
            config.global.runtimeStateHandoff = w[1] == "on"
        case "hasp.idle-handover":
            guard w.count >= 2, w[1] == "on" || w[1] == "off" else {
                parsingAlert("'hasp.idle-handover' expects 'on' or 'off'.")
                return
            }
            config.global.idleConnectionHandover = w[1] == "on"
        case "tune.http.maxhdr":
            guard w.count >= 2, !w[1].isEmpty else { parsingAlert("'tune.http.maxhdr' expects an integer argument."); return }
            guard let n = Int(w[1]), (1...32767).contains(n) else {
                parsingAlert("'tune.http.maxhdr' expects a numeric value between 1 and 32767")
                return
            }
            config.global.maxHeaders = n
        case "ssl-server-verify":
            guard w.count >= 2 else { parsingAlert("'ssl-server-verify' expects an integer argument."); return }
            guard w[1] == "none" || w[1] == "required" else {
                parsingAlert("'ssl-server-verify' expects 'none' or 'required' as argument.")
                return
            }
            config.global.sslServerVerifyRequired = w[1] == "required"
        case "max-spread-checks":
            guard w.count >= 2, !w[1].isEmpty else {
                alert("parsing [\(file):\(lineNumber)]: 'max-spread-checks' expects an integer argument (0..50).")
                return
            }
            do { config.global.maxSpreadChecksMs = try Units.milliseconds(w[1]) } catch {
                alert("parsing [\(file):\(lineNumber)]: unsupported character '\(timeErrorCharacter(error))' in 'max-spread-checks' (wants an integer delay).")
            }
        case "unix-bind":
            parseUnixBind(w)
        case "profiling.tasks":
            // Hasp keeps no per-task profile: accepted for compatibility, a no-op by design.
            let value = w.count >= 2 ? w[1] : ""
            guard ["on", "auto", "off"].contains(value) else {
                parsingAlert("'profiling.tasks' expects either 'on', 'auto', or 'off' but got '\(value)'.")
                return
            }
        case "tune.idle-pool.shared":
            // Hasp's idle server connections are per event loop by design: a no-op.
            let value = w.count >= 2 ? w[1] : ""
            guard value == "on" || value == "off" else {
                parsingAlert("'tune.idle-pool.shared' expects either 'on' or 'off' but got '\(value)'.")
                return
            }
        // HAProxy's internal HTTP client (Lua, ACME...) has no counterpart in Hasp: its settings
        // are checked as HAProxy checks them, and kept for nothing else.
        case "httpclient.ssl.verify":
            guard w.count >= 2, w[1] == "none" || w[1] == "required" else {
                parsingAlert("'httpclient.ssl.verify' expects 'none' or 'required' as argument.")
                return
            }
        case "httpclient.resolvers.prefer":
            guard w.count >= 2, w[1] == "ipv4" || w[1] == "ipv6" else {
                parsingAlert("'httpclient.resolvers.prefer' expects 'ipv4' or 'ipv6' as argument.")
                return
            }
        case "default-path":
            let mode: DefaultPath
            switch w.count >= 2 ? w[1] : "" {
            case "current": mode = .current
            case "config": mode = .config
            case "parent": mode = .parent
            case "origin":
                guard w.count >= 3, !w[2].isEmpty else {
                    alert("parsing [\(file):\(lineNumber)] : 'default-path origin' expects a directory as an argument.")
                    return
                }
                mode = .origin(w[2])
            default:
                alert("parsing [\(file):\(lineNumber)] : \(w.count >= 2 && !w[1].isEmpty ? "unsupported" : "missing") default-path mode '\(w.count >= 2 ? w[1] : "")' for 'default-path', supported modes include 'current', 'config', 'parent', and 'origin'.")
                return
            }
            let base = mode.base(forFile: file)
            var info = stat()
            if let base, !base.isEmpty, stat(base, &info) != 0 || (info.st_mode & S_IFMT) != S_IFDIR {
                let cwd = FileReader.currentDirectory()
                let what = if case .origin(let path) = mode { "to origin '\(path)'" } else { "to '\(w[1])'" }
                alert("parsing [\(file):\(lineNumber)] : couldn't set 'default-path' \(what): Impossible to get back to directory '\(cwd)': \(ConfigLoader.errorText(stat(base, &info) != 0 ? errno : ENOTDIR)).")
                return
            }
            defaultPath = mode
            FileReader.baseDirectory = base
        case "httpclient.resolvers.id":
            httpClientResolvers = w.count >= 2 ? w[1] : ""
        case "httpclient.ssl.ca-file":
            break
        case "nbproc":
            parsingAlert("nbproc is not supported any more since HAProxy 2.5. Threads will automatically be used on multi-processor machines if available.")
        default:
            if Self.globalAcceptedSilently.contains(k) { return }
            unknownKeyword(k, section: "global", candidates: Self.globalKeywords)
        }
    }

    /// `unix-bind [prefix <p>] [mode <m>] [user|uid <u>] [group|gid <g>]`: defaults for every
    /// UNIX socket `bind` (a prefix put before each path, the file's mode and owner).
    mutating func parseUnixBind(_ w: [String]) {
        var settings = UnixBindSettings()
        var i = 1
        while i < w.count {
            let option = w[i]
            let value = i + 1 < w.count ? w[i + 1] : nil
            switch option {
            case "prefix":
                guard let value else { parsingAlert("'unix-bind' : missing value for 'prefix'."); return }
                settings.prefix = value
            case "mode":
                guard let value else { break }
                guard let m = UInt32(value, radix: 8) else {
                    parsingAlert("'unix-bind' : invalid mode '\(value)' (octal integer expected).")
                    return
                }
                settings.mode = m
            case "user", "uid":
                settings.user = value
            case "group", "gid":
                settings.group = value
            default:
                parsingAlert("'unix-bind' only supports the 'prefix', 'mode', 'uid', 'gid', 'user' and 'group' options.")
                return
            }
            i += 2
        }
        config.global.unixBind = settings
    }

    mutating func unknownKeyword(_ keyword: String, section name: String, candidates: [String]) {
        if let s = Suggestion.closest(to: keyword, in: candidates) {
            parsingAlert("unknown keyword '\(keyword)' in '\(name)' section; did you mean '\(s)' maybe ?")
        } else {
            parsingAlert("unknown keyword '\(keyword)' in '\(name)' section")
        }
    }

    /// `log <target> [len <n>] [format <f>] [sample <r>] <facility> [<level> [<minlevel>]]`;
    /// nil after an error (reported).
    mutating func parseLogTarget(_ w: [String]) -> LogTarget? {
        var target = LogTarget(address: w[1])
        var i = 2
        var positional: [String] = []
        while i < w.count {
            switch w[i] {
            case "format":
                guard i + 1 < w.count, LogTarget.formats.contains(w[i + 1]) else {
                    parsingAlert("unknown log format '\(i + 1 < w.count ? w[i + 1] : "")'")
                    return nil
                }
                target.format = w[i + 1]
                i += 2
            case "len":
                let text = i + 1 < w.count ? w[i + 1] : ""
                guard let n = Int(text), (80...65535).contains(n) else {
                    parsingAlert("log : invalid log length '\(text)', must be between 80 and 65535")
                    return nil
                }
                target.length = n
                i += 2
            case "sample", "profile": i += 2
            default:
                positional.append(w[i])
                i += 1
            }
        }
        guard let facility = positional.first else {
            parsingAlert("'log' expects <address> and <facility> as arguments.")
            return nil
        }
        guard LogTarget.facilities.contains(facility) else {
            parsingAlert("unknown log facility '\(facility)'")
            return nil
        }
        target.facility = facility
        if positional.count > 1 {
            guard LogTarget.levels.contains(positional[1]) else {
                parsingAlert("unknown optional log level '\(positional[1])'")
                return nil
            }
            target.level = positional[1]
        }
        if positional.count > 2 {
            guard LogTarget.levels.contains(positional[2]) else {
                parsingAlert("unknown optional minimum log level '\(positional[2])'")
                return nil
            }
            target.minLevel = positional[2]
        }
        return target
    }

    mutating func parseStats(_ w: [String]) {
        guard w.count >= 2 else {
            parsingAlert("'stats' expects 'socket', 'maxconn', 'timeout' or 'bind-process'.")
            return
        }
        switch w[1] {
        case "socket":
            guard w.count >= 3 else {
                parsingAlert("'stats socket' requires a path or an address.")
                return
            }
            let addresses: [ListenAddress]
            do { addresses = try AddressParser.listenAddresses(w[2]) } catch {
                parsingAlert("'stats socket' : invalid address: '\(w[2])'")
                return
            }
            guard addresses.count == 1 else {
                parsingAlert("'stats socket' : port ranges are not allowed: '\(w[2])'")
                return
            }
            var socket = StatsSocketSettings(address: addresses[0], location: here)
            var i = 3
            while i < w.count {
                let option = w[i]
                let value = i + 1 < w.count ? w[i + 1] : nil
                switch option {
                case "level":
                    guard let value, ["user", "operator", "admin"].contains(value) else {
                        parsingAlert("'level' only supports 'user', 'operator', and 'admin' (got '\(value ?? "")').")
                        return
                    }
                    socket.level = value
                    i += 2
                case "mode":
                    guard let value, let m = UInt32(value, radix: 8) else {
                        parsingAlert("'mode' : missing or invalid mode '\(value ?? "")' (octal integer expected)")
                        return
                    }
                    socket.mode = m
                    i += 2
                case "user", "uid": socket.user = value; i += 2
                case "group", "gid": socket.group = value; i += 2
                case "expose-fd":
                    guard value == "listeners" else {
                        parsingAlert("'expose-fd' : unsupported value '\(value ?? "")', only 'listeners' is supported.")
                        return
                    }
                    socket.exposeFdListeners = true
                    i += 2
                case "process", "name", "maxconn", "thread", "severity-output": i += 2
                case "accept-netscaler-cip": i += 2
                default: i += 1
                }
            }
            config.global.statsSockets.append(socket)
        case "timeout":
            guard w.count >= 3 else { parsingAlert("'stats timeout' expects <time> as argument."); return }
            do { config.global.statsTimeoutMs = try Units.milliseconds(w[2]) } catch {
                parsingAlert("unexpected character '\(timeErrorCharacter(error))' in 'stats timeout'")
            }
        case "maxconn", "bind-process":
            break
        default:
            parsingAlert("'stats' only supports 'socket', 'maxconn', 'bind-process' and 'timeout' (got '\(w[1])').")
        }
    }

    func timeErrorCharacter(_ error: Units.TimeError) -> String {
        switch error {
        case .unexpectedCharacter(let c): return String(c)
        case .empty, .overflow: return ""
        }
    }

    /// `set-var proc.<name> <expression>` / `set-var-fmt proc.<name> <format>`: only what needs
    /// no stream may be read (constants, the environment, other `proc.` variables...).
    mutating func parseGlobalVariable(_ w: [String]) {
        let keyword = w[0], isFormat = keyword == "set-var-fmt"
        guard w.count >= 3 else {
            parsingAlert("'\(keyword)' requires a process-wide variable name ('proc.<name>') and \(isFormat ? "a format string" : "a sample expression").")
            return
        }
        let name: VariableName
        do { name = try VariableName.parse(w[1]) } catch {
            parsingAlert("'\(keyword)': \(error.message).")
            return
        }
        guard name.scope == .proc else {
            parsingAlert("'\(keyword)': cannot set variable '\(w[1])', only scope 'proc' is permitted in the global section.")
            return
        }
        let setting: GlobalVariableSetting
        do {
            setting = try .compile(name, w[2...].joined(separator: " "), isFormat: isFormat, context: ruleContext)
        } catch {
            parsingAlert(error.message.hasSuffix(".") ? String(error.message.dropLast()) : error.message)
            return
        }
        // HAProxy's wording here: the messages of a temporary `set-var(<name>)` rule.
        if let e = setting.streamExpression {
            let missing = e.fetch.uses.missingName(in: .internalState) ?? "client address"
            parsingAlert(isFormat
                ? "sample fetch <\(e.source)]> may not be reliably used here because it needs '\(missing)' which is not available here"
                : "fetch method '\(keyword)(\(w[1]))' extracts information from '\(missing)', none of which is available here")
            return
        }
        config.global.variables.append(setting)
    }
}
