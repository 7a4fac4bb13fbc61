import Shared

/// The `hasp` command line, with HAProxy's flags and rules.
struct LaunchOptions {
    var configPaths: [String] = []
    var checkOnly = false
    var checkCondition: String? = nil
    var verbose = false
    var quiet = false
    var zeroWarning = false
    var debug = false
    var foreground = false
    var daemon = false
    var masterWorker = false
    var systemd = false
    var masterSockets: [String] = []
    var pidfile: String? = nil
    var maxconn: Int? = nil
    var perProxyMaxconn: Int? = nil
    /// `-L <name>`: the local peer's name.
    var localPeer: String? = nil
    var chdir: String? = nil
    var softStopPids: [Int32] = []
    var terminatePids: [Int32] = []
    var socketTransfer: String? = nil
    var versionRequest: VersionRequest? = nil

    enum VersionRequest { case short, verbose, full, shortNumber, branch }

    enum Failure: Error {
        /// Print the usage and exit 1.
        case usage(String?)
        /// Print this alert and exit 1.
        case alert(String)
    }

    /// `-n` and `-N`: the limits the command line sets over the files'.
    func applyLimits(to configuration: inout Configuration) {
        if let n = maxconn { configuration.global.maxconn = n }
        if let n = perProxyMaxconn {
            for i in configuration.proxies.indices where configuration.proxies[i].maxconn == nil {
                configuration.proxies[i].maxconn = n
            }
        }
    }

    static let usage = """
    Usage : hasp [-f <cfgfile|cfgdir>]* [ -vdVD ] [ -n <maxconn> ] [ -N <maxpconn> ]
            [ -p <pidfile> ] [ -m <max megs> ] [ -C <dir> ] [-- <cfgfile>*]
            -v displays version ; -vv shows known build options.
            -d enters debug mode ; -db only disables background mode.
            -dM[<byte>,help,...] debug memory (default: poison with <byte>/0x50)
            -V enters verbose mode (disables quiet mode)
            -D goes daemon ; -C changes to <dir> before loading files.
            -W master-worker mode.
            -Ws master-worker mode with systemd notify support.
            -q quiet mode : don't display messages
            -c check mode : only check config files and exit
            -cc check condition : evaluate a condition and exit
            -n sets the maximum total # of connections (uses ulimit -n)
            -m limits the usable amount of memory (in MB)
            -N sets the default, per-proxy maximum # of connections (0)
            -L set local peer name (default to hostname)
            -p writes pids of all children to this file
            -dW fails if any warning is emitted
            -x <unix_socket> get listening sockets from a unix socket
            -S <bind>[,<bind options>...] new master CLI
            -sf/-st [pid ]* finishes/terminates old pids.

    """

    static func parse(_ arguments: [String]) throws(Failure) -> LaunchOptions {
        var o = LaunchOptions()
        var i = 0
        func value(_ flag: String) throws(Failure) -> String {
            guard i + 1 < arguments.count else { throw .usage(nil) }
            i += 1
            return arguments[i]
        }
        while i < arguments.count {
            let a = arguments[i]
            guard a.hasPrefix("-"), a.count > 1 else {
                throw .usage(nil)
            }
            switch a {
            case "--":
                o.configPaths.append(contentsOf: arguments[(i + 1)...])
                i = arguments.count
                continue
            case "-f": o.configPaths.append(try value(a))
            case "-C": o.chdir = try value(a)
            case "-c": o.checkOnly = true
            case "-cc": o.checkCondition = try value(a)
            case "-V": o.verbose = true
            case "-q": o.quiet = true
            case "-d": o.debug = true; o.foreground = true
            case "-db": o.foreground = true
            case "-D": o.daemon = true
            case "-W": o.masterWorker = true
            case "-Ws": o.masterWorker = true; o.systemd = true
            case "-dW": o.zeroWarning = true
            case "-v": o.versionRequest = .short
            case "-vv": o.versionRequest = .verbose
            case "-vq": o.versionRequest = .full
            case "-vqs": o.versionRequest = .shortNumber
            case "-vqb": o.versionRequest = .branch
            case "-p": o.pidfile = try value(a)
            case "-n":
                guard let n = Int(try value(a)), n > 0 else { throw .usage(nil) }
                o.maxconn = n
            case "-N":
                guard let n = Int(try value(a)), n > 0 else { throw .usage(nil) }
                o.perProxyMaxconn = n
            case "-m":
                _ = try value(a)
            case "-L":
                o.localPeer = try value(a)
            case "-S":
                guard i + 1 < arguments.count, !arguments[i + 1].hasPrefix("-") else {
                    throw .alert("Socket and optional bind parameters expected with the -S flag")
                }
                let spec = try value(a)
                // `<address>[,<keyword>,<value>]...`: the bind keywords come with commas.
                let parts = spec.split(separator: ",", omittingEmptySubsequences: false).map(String.init)
                guard (try? AddressParser.listenAddresses(parts[0]))?.count == 1 else {
                    throw .alert("-S: invalid master CLI address '\(parts[0])'")
                }
                let options = parts.dropFirst()
                guard options.count % 2 == 0 else {
                    throw .alert("-S: '\(options.last ?? "")' expects a value ('\(spec)')")
                }
                var i = options.startIndex
                while i < options.endIndex {
                    let keyword = options[i]
                    guard ["mode", "level", "user", "group", "uid", "gid", "name", "process"].contains(keyword) else {
                        throw .alert("-S: unknown keyword '\(keyword)' in '\(spec)'")
                    }
                    i += 2
                }
                o.masterSockets.append(spec)
            case "-x":
                guard i + 1 < arguments.count, !arguments[i + 1].hasPrefix("-") else {
                    throw .alert("Unix socket path expected with the -x flag")
                }
                o.socketTransfer = try value(a)
            case "-sf", "-st":
                var pids: [Int32] = []
                while i + 1 < arguments.count, !arguments[i + 1].hasPrefix("-") {
                    i += 1
                    let text = arguments[i]
                    guard let pid = Int32(text) else {
                        throw .alert("\(a) option: failed to parse {\(text)}")
                    }
                    guard pid > 0 else { throw .usage(nil) }
                    pids.append(pid)
                }
                if a == "-sf" { o.softStopPids.append(contentsOf: pids) } else { o.terminatePids.append(contentsOf: pids) }
            default:
                // Debug and tuning switches HAProxy accepts; they change nothing here.
                if a.hasPrefix("-d") || a == "-4" || a.hasPrefix("-dM") {
                    break
                }
                throw .usage(nil)
            }
            i += 1
        }
        if o.verbose { o.quiet = false }
        if o.debug { o.quiet = false }
        return o
    }
}
