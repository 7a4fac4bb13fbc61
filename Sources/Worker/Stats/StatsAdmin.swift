import Shared

/// The server actions of the statistics page's admin form (`stats admin`), by the values
/// HAProxy's form posts. Each does what the runtime API command of the same meaning does.
enum StatsAdminAction: String, CaseIterable {
    case ready, drain, maint, dhlth, ehlth, hrunn, hnolb, hdown, dagent, eagent, arunn, adown, shutdown

    /// The label of the form's choice.
    var label: String {
        switch self {
        case .ready: return "Set state to READY"
        case .drain: return "Set state to DRAIN"
        case .maint: return "Set state to MAINT"
        case .dhlth: return "Health: disable checks"
        case .ehlth: return "Health: enable checks"
        case .hrunn: return "Health: force UP"
        case .hnolb: return "Health: force NOLB"
        case .hdown: return "Health: force DOWN"
        case .dagent: return "Agent: disable checks"
        case .eagent: return "Agent: enable checks"
        case .arunn: return "Agent: force UP"
        case .adown: return "Agent: force DOWN"
        case .shutdown: return "Kill Sessions"
        }
    }
}

/// A posted admin form: `s=<server>` (any number), `action=<action>`, `b=<backend>` (its name
/// or `#<id>`), URL-encoded, in any order.
struct StatsAdminForm: Equatable {
    var backend: String?
    var action: String?
    var servers: [String] = []
    /// A parameter longer than HAProxy takes (2047 bytes).
    var oversized = false

    static func parse(_ body: [UInt8]) -> StatsAdminForm {
        var form = StatsAdminForm()
        for pair in body.split(separator: UInt8(ascii: "&"), omittingEmptySubsequences: true) {
            if pair.count > 2047 { form.oversized = true }
            guard let equal = pair.firstIndex(of: UInt8(ascii: "=")) else { continue }
            let key = String(decoding: pair[pair.startIndex..<equal], as: UTF8.self)
            let raw = String(decoding: pair[(equal + 1)...], as: UTF8.self)
            let value = URLDecode.decode(raw, plusAsSpace: true) ?? raw
            switch key {
            case "b": form.backend = value
            case "action": form.action = value
            case "s": form.servers.append(value)
            default: break
            }
        }
        return form
    }
}

/// Applies an admin form to the servers, as the runtime API would, and says how it went in
/// HAProxy's terms.
struct StatsAdmin {
    let runtime: WorkerRuntime

    func apply(_ form: StatsAdminForm) -> StatsAdminOutcome {
        if form.oversized { return .parseError }
        // Something missing: nothing to do.
        guard let name = form.backend, let actionName = form.action, !form.servers.isEmpty else { return .none }
        guard let backend = lookupBackend(name) else { return .parseError }
        guard let action = StatsAdminAction(rawValue: actionName) else { return .parseError }
        var found = 0
        var altered = 0
        for serverName in form.servers {
            guard let server = backend.server(named: serverName) else { continue }
            found += 1
            if perform(action, on: server) { altered += 1 }
        }
        if found == 0 { return .parseError }
        if altered == 0 { return .none }
        return found < form.servers.count || altered < found ? .partial : .done
    }

    private func lookupBackend(_ name: String) -> Backend? {
        if name.hasPrefix("#"), let id = Int(name.dropFirst()) {
            return runtime.backends.values.first { $0.settings.id == id }
        }
        return runtime.backend(named: name)
    }

    /// Whether the action applies (a check action on a server without that check does not).
    private func perform(_ action: StatsAdminAction, on server: Server) -> Bool {
        switch action {
        case .ready: runtime.setAdminState(.ready, server)
        case .drain: runtime.setAdminState(.drain, server)
        case .maint: runtime.setAdminState(.maint, server)
        case .dhlth, .ehlth:
            guard server.healthCheck != nil else { return false }
            return runtime.setCheckEnabled(server, agent: false, action == .ehlth) == nil
        case .dagent, .eagent:
            guard server.agentCheck != nil else { return false }
            return runtime.setCheckEnabled(server, agent: true, action == .eagent) == nil
        case .hrunn, .hnolb, .hdown:
            guard server.healthCheck?.isEnabled == true else { return false }
            let value = action == .hrunn ? "up" : action == .hnolb ? "stopping" : "down"
            return runtime.setHealth(server, value) == nil
        case .arunn, .adown:
            guard server.agentCheck?.isEnabled == true else { return false }
            return runtime.setAgent(server, action == .arunn ? "up" : "down") == nil
        case .shutdown:
            runtime.shutdownSessions(of: server)
        }
        return true
    }
}
