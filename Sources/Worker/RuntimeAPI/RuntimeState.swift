import Shared

/// What the CLI changed in a worker, handed to the next worker at a reload (Hasp's answer to
/// HAProxy's `server-state-file` dance): servers added or deleted at run time, forced
/// maintenance and drain, weights, maxconn and addresses. One tab-separated line per fact;
/// values the configuration had when they were changed travel along, so that a configuration
/// edit of the same value wins over the runtime change.
extension RuntimeAPI {
    static func runtimeStateCommands() -> [Spec] {
        [Spec(["_runtime_state"], help: "", level: .admin, hidden: true) { s, _, _ in
            CLIReply(s.api.runtimeState(), endsReply: false)
        }]
    }

    func runtimeState() -> String {
        var lines: [String] = []
        for backend in runtime.orderedBackends {
            for name in backend.deletedConfiguredServers { lines.append("D\t\(backend.name)\t\(name)") }
            for s in backend.servers {
                let forced = s.adminState.intersection([.forcedMaint, .forcedDrain])
                let carried = s.adminState.contains(.configMaint) ? forced.subtracting(.forcedMaint) : forced
                let fields = [
                    "S", backend.name, s.name, s.isDynamic ? "1" : "0", "\(carried.rawValue)",
                    "\(s.weight)", "\(s.settings.weight)", "\(s.maxconn)", "\(s.settings.maxconn)",
                    s.configuredAddress.description, s.settings.address.description,
                    s.addArguments.joined(separator: "\u{1f}"),
                ]
                lines.append(fields.joined(separator: "\t"))
            }
        }
        return lines.map { $0 + "\n" }.joined()
    }

    /// Applies a previous worker's state on top of this worker's configuration, before it
    /// serves. What cannot apply any more is dropped with a warning.
    public func applyRuntimeState(_ text: String) {
        let printer = DiagnosticPrinter.shared
        for line in text.split(separator: "\n") {
            let f = line.split(separator: "\t", omittingEmptySubsequences: false).map(String.init)
            if f.count == 3, f[0] == "D" {
                guard let backend = runtime.backend(named: f[1]), let server = backend.server(named: f[2]), !server.isDynamic else { continue }
                server.updateAdmin { $0.insert(.forcedMaint) }
                if backend.remove(server) == .removable { runtime.serverRemoved(server) }
                continue
            }
            guard f.count == 12, f[0] == "S", let admin = Int(f[4]), let weight = Int(f[5]), let initialWeight = Int(f[6]),
                  let maxconn = Int(f[7]), let initialMaxconn = Int(f[8]) else { continue }
            let (backendName, name, dynamic) = (f[1], f[2], f[3] == "1")
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
                let arguments = f[11].split(separator: "\u{1f}", omittingEmptySubsequences: false).map(String.init)
                guard case .success(let settings) = ConfigParser.dynamicServer(name: name, words: arguments, proxy: backend.settings, backend: { runtime.backend(named: $0)?.settings }),
                      case .success(let added) = backend.add(settings, arguments: arguments) else {
                    printer.warning("Server \(backendName)/\(name) added at run time was dropped: its settings no longer apply.")
                    continue
                }
                runtime.serverAdded(added, to: backend, startingChecks: false)
                server = added
            }
            guard let server else { continue }
            // A value the configuration changed since wins over the runtime change.
            if dynamic || server.settings.weight == initialWeight { server.setWeight(weight) }
            if dynamic || server.settings.maxconn == initialMaxconn { server.setMaxconn(maxconn) }
            if !dynamic, server.settings.address.description == f[10], f[9] != f[10],
               let address = try? AddressParser.serverAddress(f[9]) {
                server.setAddress(address)
            }
            let carried = ServerAdminState(rawValue: admin).intersection([.forcedMaint, .forcedDrain])
            server.updateAdmin { state in
                if dynamic { state.remove(.forcedMaint) }
                state.formUnion(carried)
            }
            runtime.settleRestoredAdminState(server)
        }
    }
}
