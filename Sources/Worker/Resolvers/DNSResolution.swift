import Atomics
import CCares
import NIOCore
import Shared

#if canImport(Glibc)
import Glibc
#endif

/// The names servers of `resolvers` sections go by: a name of a backend's servers (one, or the
/// slots of a `server-template`) and the addresses it had at the last answer.
struct ResolutionTarget {
    let section: String
    let host: String
    let port: Int
    let preferIPv4: Bool
    let servers: [Server]
}

/// What one name resolved to: IPv4 and IPv6 addresses, or a failure (and which `hold` period
/// applies to it: nx, refused, timeout or other).
struct ResolutionAnswer {
    var ipv4: [String] = []
    var ipv6: [String] = []
    var pending = 2
    var failed = 0
    var failure = "other"
}

/// DNS resolution for servers of `resolvers` sections, with c-ares on a thread of its own (never
/// an event loop): each name is asked for its A and AAAA records every `hold valid`, over the
/// section's name servers with its timeout and retries. An answer gives each server an address
/// (template slots get distinct ones, a server keeps its address while the answer holds it);
/// a server left without one waits in `MAINT (resolution)`. A failed resolution keeps the last
/// addresses (HAProxy's `hold` periods) and is retried after `timeout retry`.
final class ResolversService: @unchecked Sendable {
    private let settings: [String: ResolversSettings]
    private let targets: [ResolutionTarget]
    private weak var runtime: WorkerRuntime?
    private let running = ManagedAtomic(false)

    init(configuration: Configuration, backends: [String: Backend]) {
        settings = configuration.resolvers
        var groups: [String: (String, String, Int, Bool, [Server])] = [:]
        var order: [String] = []
        for backend in backends.values.sorted(by: { $0.name < $1.name }) {
            for server in backend.servers {
                guard let section = server.settings.resolvers, configuration.resolvers[section] != nil,
                      case .inet(let host, let port) = server.settings.address,
                      (try? SocketAddress(ipAddress: host, port: 0)) == nil, !host.hasPrefix("_") else { continue }
                // Slots of a template share their name; other servers each resolve their own.
                let key = server.settings.templateIndex != nil ? "\(backend.name)|\(section)|\(host)|\(port ?? 0)" : "\(backend.name)|\(server.name)"
                if groups[key] == nil {
                    order.append(key)
                    groups[key] = (section, host, port ?? 0, server.settings.resolvePrefer == "ipv4", [])
                }
                groups[key]!.4.append(server)
            }
        }
        targets = order.map { let g = groups[$0]!; return ResolutionTarget(section: g.0, host: g.1, port: g.2, preferIPv4: g.3, servers: g.4) }
    }

    var isEmpty: Bool { targets.isEmpty }

    func start(runtime: WorkerRuntime) {
        guard !targets.isEmpty, !running.exchange(true, ordering: .relaxed) else { return }
        self.runtime = runtime
        let started = DetachedThread.start { [self] in run() }
        if !started {
            DiagnosticPrinter.shared.alert("resolvers: cannot start the resolution thread; names keep their addresses from the start.")
            running.store(false, ordering: .relaxed)
        }
    }

    func stop() { running.store(false, ordering: .relaxed) }

    // MARK: - The resolution thread

    /// A query in flight: which target, which record type; c-ares hands it back to `answered`.
    final class Query {
        let target: Int
        let ipv6: Bool
        unowned let service: ResolversService
        init(target: Int, ipv6: Bool, service: ResolversService) {
            self.target = target
            self.ipv6 = ipv6
            self.service = service
        }
    }

    private var answers: [Int: ResolutionAnswer] = [:]
    private var completed: [Int] = []

    private func run() {
        ares_library_init(ARES_LIB_INIT_ALL)
        var channels: [String: ares_channel] = [:]
        for (name, section) in settings {
            var options = ares_options()
            options.timeout = Int32(clamping: section.timeoutResolveMs)
            options.tries = Int32(max(1, section.resolveRetries))
            options.ednspsz = Int32(section.acceptedPayloadSize)
            var mask = ARES_OPT_TIMEOUTMS | ARES_OPT_TRIES
            if section.acceptedPayloadSize > 512 {
                options.flags = ARES_FLAG_EDNS
                mask |= ARES_OPT_FLAGS | ARES_OPT_EDNSPSZ
            }
            var channel: ares_channel? = nil
            guard ares_init_options(&channel, &options, mask) == ARES_SUCCESS, let channel else { continue }
            let servers = section.nameservers.map { ns in ns.host.contains(":") ? "[\(ns.host)]:\(ns.port)" : "\(ns.host):\(ns.port)" }
            if !servers.isEmpty { _ = ares_set_servers_ports_csv(channel, servers.joined(separator: ",")) }
            channels[name] = channel
        }
        defer { for channel in channels.values { ares_destroy(channel) } }
        var due = [Int](repeating: 0, count: targets.count)
        // When each name last resolved (HAProxy's `hold` periods count from there).
        var lastValid = [Int](repeating: MonotonicClock.milliseconds(), count: targets.count)
        var inFlight = [Bool](repeating: false, count: targets.count)
        while running.load(ordering: .relaxed) {
            let now = MonotonicClock.milliseconds()
            for (index, target) in targets.enumerated() where !inFlight[index] && due[index] <= now {
                guard let channel = channels[target.section] else { continue }
                inFlight[index] = true
                answers[index] = ResolutionAnswer()
                for ipv6 in [false, true] {
                    let query = Unmanaged.passRetained(Query(target: index, ipv6: ipv6, service: self)).toOpaque()
                    ares_query(channel, target.host, Int32(ns_c_in.rawValue), Int32(ipv6 ? ns_t_aaaa.rawValue : ns_t_a.rawValue),
                               ResolversService.callback, query)
                }
            }
            wait(channels: Array(channels.values))
            for index in completed {
                inFlight[index] = false
                guard let answer = answers.removeValue(forKey: index) else { continue }
                let section = settings[targets[index].section]
                let now = MonotonicClock.milliseconds()
                if answer.failed == 2 {
                    // The last addresses hold for the failure's period (30 s by default), then go.
                    if now - lastValid[index] >= Int(section?.hold[answer.failure] ?? 30_000) { apply(ResolutionAnswer(), to: targets[index]) }
                    due[index] = now + Int(section?.timeoutRetryMs ?? 1_000)
                } else {
                    apply(answer, to: targets[index])
                    lastValid[index] = now
                    due[index] = now + Int(section?.holdValidMs ?? 10_000)
                }
            }
            completed.removeAll()
        }
    }

    /// Waits for the channels' sockets (100 ms at most, so a stop is seen) and lets c-ares
    /// read them and run its timers.
    private func wait(channels: [ares_channel]) {
        var fds: [pollfd] = []
        var owners: [ares_channel] = []
        for channel in channels {
            var sockets = [ares_socket_t](repeating: ARES_SOCKET_BAD, count: Int(ARES_GETSOCK_MAXNUM))
            let bits = ares_getsock(channel, &sockets, Int32(ARES_GETSOCK_MAXNUM))
            for i in 0..<Int(ARES_GETSOCK_MAXNUM) {
                let readable = bits & (1 << i) != 0, writable = bits & (1 << (i + Int(ARES_GETSOCK_MAXNUM))) != 0
                guard readable || writable else { continue }
                fds.append(pollfd(fd: sockets[i], events: Int16((readable ? POLLIN : 0) | (writable ? POLLOUT : 0)), revents: 0))
                owners.append(channel)
            }
        }
        var timeout: Int32 = 100
        for channel in channels {
            var max = timeval(tv_sec: 0, tv_usec: 100_000), tv = timeval()
            if let next = ares_timeout(channel, &max, &tv) {
                timeout = min(timeout, Int32(next.pointee.tv_sec * 1000 + next.pointee.tv_usec / 1000))
            }
        }
        if fds.isEmpty {
            usleep(UInt32(max(1, timeout)) * 1000)
        } else {
            _ = poll(&fds, nfds_t(fds.count), max(1, timeout))
        }
        for (i, fd) in fds.enumerated() where fd.revents != 0 {
            let read = fd.revents & Int16(POLLIN | POLLERR | POLLHUP) != 0 ? fd.fd : ARES_SOCKET_BAD
            let write = fd.revents & Int16(POLLOUT) != 0 ? fd.fd : ARES_SOCKET_BAD
            ares_process_fd(owners[i], read, write)
        }
        // Timeouts and retries.
        for channel in channels { ares_process_fd(channel, ARES_SOCKET_BAD, ARES_SOCKET_BAD) }
    }

    private static let callback: ares_callback = { arg, status, _, buffer, length in
        guard let arg else { return }
        let query = Unmanaged<Query>.fromOpaque(arg).takeRetainedValue()
        query.service.answered(query, status: status, buffer: buffer, length: length)
    }

    private func answered(_ query: Query, status: Int32, buffer: UnsafeMutablePointer<UInt8>?, length: Int32) {
        guard var answer = answers[query.target] else { return }
        answer.pending -= 1
        if status == ARES_SUCCESS, let buffer {
            let addresses = query.ipv6 ? Self.parseAAAA(buffer, length) : Self.parseA(buffer, length)
            if query.ipv6 { answer.ipv6 = addresses } else { answer.ipv4 = addresses }
        } else if status != ARES_ENODATA {
            answer.failed += 1
            switch status {
            case ARES_ENOTFOUND: answer.failure = "nx"
            case ARES_EREFUSED: answer.failure = "refused"
            case ARES_ETIMEOUT: answer.failure = "timeout"
            default: break
            }
        }
        answers[query.target] = answer
        if answer.pending == 0 { completed.append(query.target) }
    }

    static func parseA(_ buffer: UnsafeMutablePointer<UInt8>, _ length: Int32) -> [String] {
        var records = [ares_addrttl](repeating: ares_addrttl(), count: 64)
        var count: Int32 = 64
        guard ares_parse_a_reply(buffer, length, nil, &records, &count) == ARES_SUCCESS else { return [] }
        return records.prefix(Int(count)).map { record in
            var address = record.ipaddr
            var text = [CChar](repeating: 0, count: Int(INET_ADDRSTRLEN))
            inet_ntop(AF_INET, &address, &text, socklen_t(text.count))
            return String(decoding: text.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
        }
    }

    static func parseAAAA(_ buffer: UnsafeMutablePointer<UInt8>, _ length: Int32) -> [String] {
        var records = [ares_addr6ttl](repeating: ares_addr6ttl(), count: 64)
        var count: Int32 = 64
        guard ares_parse_aaaa_reply(buffer, length, nil, &records, &count) == ARES_SUCCESS else { return [] }
        return records.prefix(Int(count)).map { record in
            var address = record.ip6addr
            var text = [CChar](repeating: 0, count: Int(INET6_ADDRSTRLEN))
            inet_ntop(AF_INET6, &address, &text, socklen_t(text.count))
            return String(decoding: text.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
        }
    }

    /// Gives the target's servers addresses from the answer: a server keeps its address while
    /// the answer still has it; the others take the unused ones in order (all of them the first
    /// one for a plain server); the rest wait in maintenance.
    private func apply(_ answer: ResolutionAnswer, to target: ResolutionTarget) {
        guard let runtime else { return }
        // HAProxy prefers IPv6 unless `resolve-prefer ipv4`.
        let ordered = target.preferIPv4 ? answer.ipv4 + answer.ipv6 : answer.ipv6 + answer.ipv4
        let addresses = ordered.compactMap { try? SocketAddress(ipAddress: $0, port: target.port) }
        if target.servers.count == 1 {
            let server = target.servers[0]
            let keep = server.socketAddress.flatMap { current in addresses.first { $0 == current } }
            runtime.applyResolution(server, keep ?? addresses.first)
            return
        }
        var free = addresses
        var assignment: [SocketAddress?] = target.servers.map { server in
            guard let current = server.socketAddress, let i = free.firstIndex(of: current) else { return nil }
            free.remove(at: i)
            return current
        }
        for i in assignment.indices where assignment[i] == nil && !free.isEmpty { assignment[i] = free.removeFirst() }
        for (server, address) in zip(target.servers, assignment) { runtime.applyResolution(server, address) }
    }
}
