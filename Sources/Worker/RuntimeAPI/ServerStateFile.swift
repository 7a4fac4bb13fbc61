import NIOCore
import Shared

/// `load-server-state-from-file`: applies the `show servers state` output an operator saved
/// before a reload (HAProxy's way of keeping runtime changes), for users who script it today.
extension RuntimeAPI {
    /// Reads the state files the configuration names and applies the lines of each backend that
    /// asks for them. A missing file is a warning, as in HAProxy.
    /// Applies the saved server states. `preloaded` holds the files' contents when they were read
    /// earlier (a worker reads them before it drops privileges and enters its `chroot`); a path
    /// missing from it is read now.
    public func applyServerStateFiles(preloaded: [String: [UInt8]?] = [:]) {
        var cache: [String: [String]] = [:]
        for backend in runtime.orderedBackends {
            guard let path = Self.stateFilePath(for: backend.settings, global: runtime.configuration.global) else { continue }
            if cache[path] == nil {
                guard let bytes = preloaded[path] ?? FileReader.read(path) else {
                    DiagnosticPrinter.shared.warning("Can't open server state file '\(path)'")
                    cache[path] = []
                    continue
                }
                cache[path] = String(decoding: bytes, as: UTF8.self).split(separator: "\n").map(String.init)
            }
            applyRuntimeState(Self.runtimeLines(fromServerState: cache[path] ?? [], backend: backend, resolvers: runtime.configuration.resolvers))
        }
    }

    /// Reads every server state file the configuration loads (nil for one that cannot be read).
    public static func readServerStateFiles(_ configuration: Configuration) -> [String: [UInt8]?] {
        var contents: [String: [UInt8]?] = [:]
        for proxy in configuration.proxies where proxy.kind != .defaults {
            guard let path = stateFilePath(for: proxy, global: configuration.global), contents[path] == nil else { continue }
            contents[path] = .some(FileReader.read(path))
        }
        return contents
    }

    /// The state file a backend loads, with `server-state-base` applied.
    static func stateFilePath(for settings: ProxySettings, global: GlobalSettings) -> String? {
        let name: String?
        switch settings.loadServerState {
        case .global: name = global.serverStateFile
        case .local: name = settings.serverStateFileName ?? settings.name
        case .none: name = nil
        }
        guard let name else { return nil }
        return name.hasPrefix("/") || global.serverStateBase == nil ? name : global.serverStateBase! + "/" + name
    }

    /// Turns version-1 `show servers state` lines of one backend into runtime-state entries.
    static func runtimeLines(fromServerState lines: [String], backend: Backend, resolvers: [String: ResolversSettings]) -> RuntimeStateRecord {
        guard lines.first == "1" else { return RuntimeStateRecord() }
        var out = RuntimeStateRecord()
        for line in lines.dropFirst() where !line.hasPrefix("#") {
            let f = line.split(separator: " ").map(String.init)
            guard f.count >= 19, f[1] == backend.name, let server = backend.server(named: f[3]),
                  let admin = Int(f[6]), let uweight = Int(f[7]), let iweight = Int(f[8]) else { continue }
            let carried = ServerAdminState(rawValue: admin).intersection([.forcedMaint, .forcedDrain]).rawValue
            var address = server.settings.address.description
            if ResolversService.section(of: server, in: resolvers) != nil, case .inet(let name, let port) = server.settings.address,
               (try? SocketAddress(ipAddress: name, port: 0)) == nil {
                // Resolved at run time: `srv_addr` is what the name resolved to, `srv_fqdn` the
                // name (an SRV target, or one set at run time), `srv_port` its port.
                let changed = admin & ServerAdminState.fqdnChanged.rawValue != 0
                let hostname = changed && f[17] != "-" ? f[17] : name
                let hostPort = changed ? Int(f[18]) ?? port : port
                out.resolutions.append(RuntimeStateRecord.Resolution(
                    backend: backend.name, server: server.name, initialAddress: address,
                    hostname: ServerAddress.inet(host: hostname, port: hostPort).description, resolved: f[4] == "-" ? "" : f[4], nameChanged: changed))
            } else if f[4] != "-", case .inet(_, let port) = server.settings.address {
                let host = f[4].contains(":") ? "[\(f[4])]" : f[4]
                address = "\(host):\(Int(f[18]) ?? port ?? 0)"
            }
            out.entries.append(.server(RuntimeStateRecord.ServerState(
                backend: backend.name, name: server.name, dynamic: false, adminBits: carried, weight: uweight,
                initialWeight: iweight, maxconn: server.maxconn, initialMaxconn: server.settings.maxconn,
                address: address, initialAddress: server.settings.address.description, addArguments: [])))
        }
        return out
    }
}
