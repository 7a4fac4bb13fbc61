import NIOCore
import Shared

/// What the CLI changed in a worker, handed to the next worker at a reload (Hasp's answer to
/// HAProxy's `server-state-file` dance): the master asks the current worker on its channel
/// (`runtimeStateRequest`) and passes the `RuntimeStateRecord` to the new one. Values the
/// configuration had when they were changed travel along, so that a configuration edit of the
/// same value wins over the runtime change.
extension RuntimeAPI {
    public func runtimeState() -> RuntimeStateRecord {
        var entries: [RuntimeStateRecord.Entry] = []
        var resolutions: [RuntimeStateRecord.Resolution] = []
        for backend in runtime.orderedBackends {
            for name in backend.deletedConfiguredServers { entries.append(.deleted(backend: backend.name, server: name)) }
            for s in backend.servers {
                let forced = s.adminState.intersection([.forcedMaint, .forcedDrain])
                let carried = s.adminState.contains(.configMaint) ? forced.subtracting(.forcedMaint) : forced
                var address = s.configuredAddress.description
                if let resolution = resolution(of: s, in: backend) {
                    resolutions.append(resolution)
                    // The name travels with its resolution; the address only if `set server addr` made it an IP.
                    if case .inet(let host, _) = s.configuredAddress, (try? SocketAddress(ipAddress: host, port: 0)) == nil {
                        address = s.settings.address.description
                    }
                }
                entries.append(.server(RuntimeStateRecord.ServerState(
                    backend: backend.name, name: s.name, dynamic: s.isDynamic, adminBits: carried.rawValue,
                    weight: s.weight, initialWeight: s.settings.weight, maxconn: s.maxconn, initialMaxconn: s.settings.maxconn,
                    address: address, initialAddress: s.settings.address.description,
                    addArguments: s.addArguments)))
            }
        }
        return RuntimeStateRecord(entries: entries, tables: stickTableSnapshots(), resolutions: resolutions)
    }

    /// Where a server resolved at run time stands, for the next worker.
    func resolution(of server: Server, in backend: Backend) -> RuntimeStateRecord.Resolution? {
        guard ResolversService.section(of: server, in: runtime.configuration.resolvers) != nil else { return nil }
        return RuntimeStateRecord.Resolution(
            backend: backend.name, server: server.name, initialAddress: server.settings.address.description,
            hostname: server.configuredAddress.description, resolved: server.socketAddress?.ipAddress ?? "",
            nameChanged: server.adminState.contains(.fqdnChanged))
    }

    /// A previous worker's resolutions: servers start from the names and addresses it had, as
    /// long as the configuration still gives them the same name.
    func loadResolutions(_ resolutions: [RuntimeStateRecord.Resolution]) {
        for r in resolutions {
            guard let backend = runtime.backend(named: r.backend), let server = backend.server(named: r.server),
                  ResolversService.section(of: server, in: runtime.configuration.resolvers) != nil,
                  server.settings.address.description == r.initialAddress,
                  let hostname = try? AddressParser.serverAddress(r.hostname), case .inet(_, let port) = hostname else { continue }
            let resolved = r.resolved.isEmpty ? nil : try? SocketAddress(ipAddress: r.resolved, port: port ?? 0)
            _ = server.setResolution(hostname: hostname, resolved: resolved)
            server.updateAdmin { state in
                if resolved != nil { state.remove(.resolutionMaint) } else { state.insert(.resolutionMaint) }
                if r.nameChanged { state.insert(.fqdnChanged) } else { state.remove(.fqdnChanged) }
            }
            runtime.settleRestoredAdminState(server)
        }
    }

    /// The stick tables' entries for the next worker, within what one message may carry.
    func stickTableSnapshots() -> [StickTableSnapshot] {
        let tables = runtime.stickTables.tables
        guard !tables.isEmpty else { return [] }
        // A message holds 64 MB; the tables share 48 of them, by their row sizes.
        let budget = (48 << 20) / tables.count
        return tables.map { table in
            let perEntry = 64 + 8 * StickDataLayout(table.definition.stored).width
            let limit = max(1, budget / perEntry)
            let snapshot = table.snapshot(limit: limit)
            if snapshot.entries.count == limit, table.used > limit {
                DiagnosticPrinter.shared.warning("Stick table '\(table.name)': \(limit) of its \(table.used) entries go to the next worker (the hand-over is limited to 48 MB).")
            }
            return snapshot
        }
    }

    /// Loads the previous worker's stick tables into this worker's (before it serves).
    func loadStickTables(_ snapshots: [StickTableSnapshot]) {
        for snapshot in snapshots {
            guard let table = runtime.stickTables[snapshot.name] else {
                if !snapshot.entries.isEmpty {
                    DiagnosticPrinter.shared.warning("Stick table '\(snapshot.name)' no longer exists: its \(snapshot.entries.count) entries are dropped.")
                }
                continue
            }
            if let warning = table.load(snapshot) { DiagnosticPrinter.shared.warning(warning) }
        }
    }

    /// Applies a previous worker's state on top of this worker's configuration, before it
    /// serves. What cannot apply any more is dropped with a warning.
    public func applyRuntimeState(_ record: RuntimeStateRecord) {
        let printer = DiagnosticPrinter.shared
        loadStickTables(record.tables)
        loadResolutions(record.resolutions)
        // The previous worker's tables are as complete as the peers': nothing to learn at start.
        if !record.tables.isEmpty { runtime.peers.markSynchronised() }
        for entry in record.entries {
            let f: RuntimeStateRecord.ServerState
            switch entry {
            case .deleted(let backendName, let serverName):
                guard let backend = runtime.backend(named: backendName), let server = backend.server(named: serverName), !server.isDynamic else { continue }
                server.updateAdmin { $0.insert(.forcedMaint) }
                if backend.remove(server) == .removable { runtime.serverRemoved(server) }
                continue
            case .server(let state):
                f = state
            }
            let (backendName, name, dynamic) = (f.backend, f.name, f.dynamic)
            guard let backend = runtime.backend(named: backendName) else {
                if dynamic { printer.warning("Server \(backendName)/\(name) added at run time was dropped: backend '\(backendName)' no longer exists.") }
                continue
            }
            var server = backend.server(named: name)
            if dynamic {
                guard server == nil else {
                    printer.warning("Server \(backendName)/\(name) added at run time was dropped: the configuration now has a server of that name.")
                    continue
                }
                guard backend.supportsDynamicServers else {
                    printer.warning("Server \(backendName)/\(name) added at run time was dropped: backend '\(backendName)' uses a non dynamic load balancing method.")
                    continue
                }
                let arguments = f.addArguments
                guard case .success(let settings) = ConfigParser.dynamicServer(name: name, words: arguments, proxy: backend.settings, global: runtime.configuration.global, backend: { runtime.backend(named: $0)?.settings }),
                      case .success(let added) = backend.add(settings, arguments: arguments) else {
                    printer.warning("Server \(backendName)/\(name) added at run time was dropped: its settings no longer apply.")
                    continue
                }
                runtime.serverAdded(added, to: backend, startingChecks: false)
                server = added
            }
            guard let server else { continue }
            // A value the configuration changed since wins over the runtime change.
            if dynamic || server.settings.weight == f.initialWeight { server.setWeight(f.weight) }
            if dynamic || server.settings.maxconn == f.initialMaxconn { server.setMaxconn(f.maxconn) }
            if !dynamic, server.settings.address.description == f.initialAddress, f.address != f.initialAddress,
               let address = try? AddressParser.serverAddress(f.address) {
                server.setAddress(address)
            }
            let carried = ServerAdminState(rawValue: f.adminBits).intersection([.forcedMaint, .forcedDrain])
            server.updateAdmin { state in
                if dynamic { state.remove(.forcedMaint) }
                state.formUnion(carried)
            }
            runtime.settleRestoredAdminState(server)
        }
    }
}
