import Shared

/// Frontend commands: `enable|disable|shutdown frontend`, `set maxconn frontend|global`.
extension RuntimeAPI {
    static func proxyCommands() -> [Spec] {
        [
            Spec(["disable", "frontend"], usage: "disable frontend <frontend>", help: "temporarily disable specific frontend",
                 level: .admin) { s, _, command in
                s.withFrontend(command.words, at: 2) { frontend in
                    if s.runtime.isStopping { return .error("Frontend was already shut down.\n") }
                    if frontend.gate.isDisabled { return CLIReply("Frontend is already disabled.\n") }
                    frontend.gate.setDisabled(true)
                    return .empty
                }
            },
            Spec(["enable", "frontend"], usage: "enable frontend <frontend>", help: "re-enable specific frontend",
                 level: .admin) { s, _, command in
                s.withFrontend(command.words, at: 2) { frontend in
                    if s.runtime.isStopping { return .error("Frontend was previously shut down, cannot enable it.\n") }
                    if !frontend.gate.isDisabled { return CLIReply("Frontend is already enabled.\n") }
                    frontend.gate.setDisabled(false)
                    return .empty
                }
            },
            Spec(["shutdown", "frontend"], usage: "shutdown frontend <frontend>", help: "stop a specific frontend",
                 level: .admin) { s, _, command in
                s.withFrontend(command.words, at: 2) { frontend in
                    if frontend.isShutDown { return CLIReply("Frontend was already shut down.\n") }
                    s.api.engine.shutDown(frontend)
                    return .empty
                }
            },
            Spec(["set", "maxconn", "frontend"], usage: "set maxconn frontend <frontend> <value>",
                 help: "change a frontend's maxconn setting", level: .admin) { s, _, command in
                s.withFrontend(command.words, at: 3) { frontend in
                    guard command.words.count >= 5 else { return .error("Integer value expected.\n") }
                    guard let n = Int(command.words[4]), n >= 0 else { return .error("Value out of range.\n") }
                    frontend.gate.setLimit(n)
                    return .empty
                }
            },
            Spec(["set", "maxconn", "global"], usage: "set maxconn global <value>", help: "change the per-process maxconn setting",
                 level: .admin) { s, _, command in
                guard command.words.count >= 4 else { return .error("Expects an integer value.\n") }
                guard let n = Int(command.words[3]), n >= 0 else { return .error("Value out of range.\n") }
                let hard = s.runtime.configuration.global.maxconn ?? Int.max
                s.runtime.globalGate.setLimit(n == 0 || n > hard ? (hard == Int.max ? 0 : hard) : n)
                return .empty
            },
            Spec(["enable", "dynamic-cookie", "backend"], usage: "enable dynamic-cookie backend <bk>",
                 help: "enable dynamic cookies on a specific backend", level: .admin) { s, _, command in
                s.withBackend(command.words, at: 3) { backend in
                    backend.updateDynamicCookie(enabled: true)
                    return .empty
                }
            },
            Spec(["disable", "dynamic-cookie", "backend"], usage: "disable dynamic-cookie backend <bk>",
                 help: "disable dynamic cookies on a specific backend", level: .admin) { s, _, command in
                s.withBackend(command.words, at: 3) { backend in
                    backend.updateDynamicCookie(enabled: false)
                    return .empty
                }
            },
            Spec(["set", "dynamic-cookie-key", "backend"], usage: "set dynamic-cookie-key backend <bk> <k>",
                 help: "change a backend secret key for dynamic cookies", level: .admin) { s, _, command in
                s.withBackend(command.words, at: 3) { backend in
                    guard command.words.count >= 5 else { return .error("String value expected.\n") }
                    backend.updateDynamicCookie(key: command.words[4])
                    return .empty
                }
            },
            Spec(["set", "maxconn"], usage: "set maxconn [frontend|global|server] ...", help: "change a maxconn setting",
                 hidden: true) { _, _, _ in
                .error("'set maxconn' only supports 'frontend', 'server', and 'global'.\n")
            },
        ]
    }
}

extension RuntimeSession {
    /// Finds the backend named at `words[index]` (or `#<id>`) and runs `body` on it.
    func withBackend(_ words: [String], at index: Int, _ body: (Backend) -> CLIReply) -> CLIReply {
        guard words.count > index else { return .error("A backend name is expected.\n") }
        guard let backend = runtime.backend(named: words[index]) else { return .error("No such backend.\n") }
        return body(backend)
    }

    /// Finds the frontend named at `words[index]` (or `#<id>`) and runs `body` on it.
    func withFrontend(_ words: [String], at index: Int, _ body: (Frontend) -> CLIReply) -> CLIReply {
        guard words.count > index else { return .error("A frontend name is expected.\n") }
        guard let frontend = runtime.frontend(named: words[index]) else { return .error("No such frontend.\n") }
        return body(frontend)
    }
}

extension WorkerRuntime {
    func frontend(named name: String) -> Frontend? {
        if name.hasPrefix("#"), let id = Int(name.dropFirst()) {
            return frontends.first { $0.settings.id == id }
        }
        return frontends.first { $0.name == name }
    }

    func backend(named name: String) -> Backend? {
        if name.hasPrefix("#"), let id = Int(name.dropFirst()) {
            return backends.values.first { $0.settings.id == id }
        }
        return backends[name]
    }

    /// Backends in configuration order.
    var orderedBackends: [Backend] {
        backends.values.sorted { $0.settings.id < $1.settings.id }
    }
}
