import NIOCore
import Shared

/// `stick match|on|store-request|store-response`: a key (the client's address, a cookie...)
/// maps to the server that served it, in a stick table. Shared by HTTP exchanges and TCP
/// connections: both evaluate the rules' patterns and conditions on their `StreamContext`.
enum StickPersistence {
    /// The server the stream's key sticks to, when `accepts` lets it take the stream (up, or
    /// any state with `option persist`); nil lets the balancer choose. Notes in the context
    /// the keys `stick on|store-request` store once a server is known. With `assigned` (a
    /// cookie or `use-server` chose), only the keys are noted.
    static func server(_ backend: Backend, context c: StreamContext, runtime: WorkerRuntime, assigned: Bool,
                       accepts: (Server) -> Bool) -> Server? {
        var chosen: Server?
        for rule in backend.rules.stickRules where rule.kind != .storeResponse {
            // Only the first store of each table applies (the others are fallbacks).
            if rule.kind.storesRequest, c.pendingStickStores.contains(where: { $0.0.name == rule.table }) { continue }
            if let condition = rule.condition, !condition.matches(c) { continue }
            guard let table = runtime.stickTables[rule.table], let value = rule.pattern.evaluate(c),
                  let key = StickKey(value, type: table.keyType) else { continue }
            if rule.kind.storesRequest { c.pendingStickStores.append((table, key)) }
            guard rule.kind.matches else { continue }
            let now = table.now
            let found: (id: Int64?, serverKey: String?)? = table.withStorage { s in
                guard let slot = s.find(key, now: now) else { return nil }
                s.touch(slot, now: now)
                return (s.value(slot, .serverID, now: now), s.serverKey(slot))
            }
            guard !assigned, chosen == nil, let found else { continue }
            // The server's name (or address) first, as HAProxy looks it up: it survives a
            // reload that renumbers servers; then its id.
            var server: Server? = nil
            if let serverKey = found.serverKey {
                server = table.definition.serverKeyByAddress
                    ? backend.servers.first { addressText($0.socketAddress) == serverKey }
                    : backend.servers.first { $0.name == serverKey }
            }
            if server == nil, let id = found.id, id > 0 { server = backend.server(named: "#\(id)") }
            if let server, accepts(server) { chosen = server }
        }
        return chosen
    }

    /// `server` took the stream: the noted keys, and those of `stick store-response` rules
    /// (evaluated on what the context holds of the response), now map to it.
    static func store(_ backend: Backend, _ server: Server, context c: StreamContext) {
        var stores = c.pendingStickStores
        c.pendingStickStores.removeAll()
        let wasResponse = c.readsResponse
        c.readsResponse = true
        defer { c.readsResponse = wasResponse }
        for rule in backend.rules.stickRules where rule.kind == .storeResponse {
            if let condition = rule.condition, !condition.matches(c) { continue }
            guard let table = c.runtime.stickTables[rule.table], let value = rule.pattern.evaluate(c),
                  let key = StickKey(value, type: table.keyType) else { continue }
            stores.append((table, key))
        }
        for (table, key) in stores {
            let serverKey = table.definition.serverKeyByAddress ? addressText(server.socketAddress) : server.name
            let now = table.now
            table.withStorage { s in
                guard let slot = s.findOrCreate(key, now: now) else { return }
                s.set(slot, .serverID, Int64(server.id), now: now)
                s.setServerKey(slot, serverKey)
                s.touch(slot, now: now)
            }
        }
    }

    static func addressText(_ address: SocketAddress?) -> String {
        guard let address, let ip = address.ipAddress else { return "" }
        return "\(ip):\(address.port ?? 0)"
    }
}
