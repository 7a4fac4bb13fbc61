import NIOCore
import Shared

/// Idle HTTP connections to one server, owned by one event loop. Only that loop touches it, so it
/// needs no lock; `Server.idleConnections` mirrors the count for the stats.
final class ServerConnectionPool: @unchecked Sendable {
    let loopIndex: Int
    private let maxIdle: Int
    private let purgeDelayMs: Int64
    private let lowConn: Int
    /// Connections that served one request only ("unsafe" in HAProxy's terms).
    private var unsafeIdle: [ServerConnection] = []
    /// Connections already reused at least once ("safe").
    private var safeIdle: [ServerConnection] = []
    private var purgeTask: Scheduled<Void>? = nil
    /// Connections in use on this loop, and the recent peak, for the purge formula.
    var used = 0
    private var maxUsed = 0
    private var needEstimate = 0

    init(loopIndex: Int, settings: ServerSettings) {
        self.loopIndex = loopIndex
        maxIdle = settings.poolMaxConn
        purgeDelayMs = settings.poolPurgeDelayMs
        lowConn = settings.poolLowConn
    }

    var idleCount: Int { unsafeIdle.count + safeIdle.count }

    /// The counts `show servers conn` prints; read on the pool's own loop.
    struct Snapshot {
        var unsafe = 0, safe = 0, used = 0, maxUsed = 0, needEstimate = 0
    }

    func snapshot() -> Snapshot {
        Snapshot(unsafe: unsafeIdle.count, safe: safeIdle.count, used: used, maxUsed: maxUsed, needEstimate: needEstimate)
    }

    func noteUsed() {
        used += 1
        if used > maxUsed { maxUsed = used }
        if maxUsed > needEstimate { needEstimate = maxUsed }
    }

    func noteReleased() {
        used -= 1
    }

    /// Takes an idle connection allowed by the reuse policy for this request.
    func take(isFirstRequest: Bool, reuse: HTTPReuse) -> ServerConnection? {
        switch reuse {
        case .never:
            return nil
        case .safe:
            if isFirstRequest { return nil }
            return safeIdle.popLast() ?? unsafeIdle.popLast()
        case .aggressive:
            if isFirstRequest { return safeIdle.popLast() }
            return safeIdle.popLast() ?? unsafeIdle.popLast()
        case .always:
            return safeIdle.popLast() ?? unsafeIdle.popLast()
        }
    }

    /// Offers a connection that just finished a request. Returns false when it must be closed.
    func add(_ connection: ServerConnection, server: Server, eventLoop: EventLoop, inMaintenance: Bool) -> Bool {
        guard !inMaintenance, purgeDelayMs > 0, maxIdle != 0 else { return false }
        if maxIdle > 0, idleCount >= maxIdle { return false }
        let isSafe = connection.requestCount > 1
        // HAProxy's admission rule: always keep a first idle connection on this loop; beyond
        // that, only as many as recent use says will be needed. Without it, traffic whose first
        // requests never reuse (http-reuse safe, Connection: close clients) would pile up idle
        // connections until the file-descriptor limit.
        let firstOfItsKind = isSafe ? safeIdle.isEmpty : (safeIdle.isEmpty && unsafeIdle.isEmpty)
        if !firstOfItsKind, used + idleCount + 1 > max(used, needEstimate) + lowConn { return false }
        if isSafe { safeIdle.append(connection) } else { unsafeIdle.append(connection) }
        server.idleConnections.wrappingIncrement(ordering: .relaxed)
        schedulePurge(server: server, eventLoop: eventLoop)
        return true
    }

    /// Removes a connection that closed or misbehaved while idle.
    func remove(_ connection: ServerConnection, server: Server) {
        if let i = unsafeIdle.firstIndex(where: { $0 === connection }) {
            unsafeIdle.remove(at: i)
            server.idleConnections.wrappingDecrement(ordering: .relaxed)
        } else if let i = safeIdle.firstIndex(where: { $0 === connection }) {
            safeIdle.remove(at: i)
            server.idleConnections.wrappingDecrement(ordering: .relaxed)
        }
    }

    /// Maintenance or an address change: every idle connection of this loop closes (the
    /// counters drop as each one really closes).
    func closeAll(server: Server) {
        let all = unsafeIdle + safeIdle
        unsafeIdle.removeAll()
        safeIdle.removeAll()
        for c in all {
            c.isPooled = false
            server.idleConnections.wrappingDecrement(ordering: .relaxed)
            c.close()
        }
    }

    /// Called after `take` to keep the idle counter true.
    func noteTaken(server: Server) {
        server.idleConnections.wrappingDecrement(ordering: .relaxed)
    }

    private func schedulePurge(server: Server, eventLoop: EventLoop) {
        guard purgeTask == nil else { return }
        purgeTask = eventLoop.scheduleTask(in: .milliseconds(purgeDelayMs)) { [self] in
            purgeTask = nil
            purge(server: server, eventLoop: eventLoop)
        }
    }

    /// HAProxy's periodic purge: kill half of the connections exceeding the recent need.
    private func purge(server: Server, eventLoop: EventLoop) {
        let exceed = used + idleCount - max(maxUsed, needEstimate)
        if exceed > 0 {
            var toKill = (exceed + 1) / 2
            while toKill > 0, let victim = unsafeIdle.first ?? safeIdle.first {
                // Oldest first: they are the least likely to be wanted again soon.
                victim.close()
                remove(victim, server: server)
                toKill -= 1
            }
        }
        needEstimate = max((needEstimate + maxUsed) / 2, maxUsed)
        maxUsed = used
        if idleCount > 0 { schedulePurge(server: server, eventLoop: eventLoop) }
    }
}
