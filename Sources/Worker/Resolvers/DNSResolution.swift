import Atomics
import CCares
import NIOConcurrencyHelpers
import NIOCore
import Shared

#if canImport(Glibc)
import Glibc
#endif

/// A name a section resolves: for servers naming it, or for the SRV slots of a template.
struct ResolutionKey: Hashable {
    let section: String
    /// Lowercase: DNS names compare without case.
    let name: String
    let kind: ResolutionMachine.Kind
}

/// DNS resolution for servers of `resolvers` sections, on a thread of its own (never an event
/// loop), with c-ares doing the DNS protocol. Each name a server goes by is resolved every
/// `hold valid` (`ResolutionMachine`); an answer gives the backend's servers of that name
/// addresses (`AddressAssignment`), SRV answers give template slots a target, a port and a
/// weight, and each target is then resolved like a server's name. A failure keeps the last
/// addresses for its `hold` period. The servers to resolve are looked up again every half
/// second (and at once after `set server fqdn`), so names that change at run time follow.
final class ResolversService: @unchecked Sendable {
    /// `show resolvers`: shared with the CLI.
    let counters: ResolversCounters
    private let settings: [String: ResolversSettings]
    private let backends: [Backend]
    private weak var runtime: WorkerRuntime?
    private let running = ManagedAtomic(false)
    /// Set by the CLI: look at the servers' names again now.
    private let rescanRequested = ManagedAtomic(false)

    init(configuration: Configuration, backends: [String: Backend]) {
        settings = configuration.resolvers
        self.backends = backends.values.sorted { $0.settings.id < $1.settings.id }
        counters = ResolversCounters(sections: configuration.resolvers.values.sorted { $0.order < $1.order }.map { section in
            (section.name, section.nameservers.map { NameserverCounters(id: $0.id) })
        })
    }

    /// Whether any server resolves at run time.
    var isEmpty: Bool { !backends.contains { $0.servers.contains { Self.section(of: $0, in: settings) != nil } } }

    func start(runtime: WorkerRuntime) {
        guard !isEmpty, !running.exchange(true, ordering: .relaxed) else { return }
        self.runtime = runtime
        if !DetachedThread.start({ [self] in run() }) {
            DiagnosticPrinter.shared.alert("resolvers: cannot start the resolution thread; names keep their addresses from the start.")
            running.store(false, ordering: .relaxed)
        }
    }

    func stop() { running.store(false, ordering: .relaxed) }

    /// `set server fqdn`: the server's new name is resolved at once.
    func nameChanged() { rescanRequested.store(true, ordering: .relaxed) }

    /// The server's section, when it resolves at run time.
    static func section(of server: Server, in settings: [String: ResolversSettings]) -> String? {
        guard let section = server.settings.resolvers, settings[section] != nil, case .inet = server.settings.address else { return nil }
        return section
    }

    // MARK: - The resolution thread (everything below runs on it)

    /// A question on its way: which resolution and generation it serves, to which name server.
    final class Question {
        let key: ResolutionKey
        let generation: Int
        let type: DNSQueryType
        let nameserver: Int
        let attempt: Int
        unowned let service: ResolversService
        init(key: ResolutionKey, generation: Int, type: DNSQueryType, nameserver: Int, attempt: Int, service: ResolversService) {
            self.key = key
            self.generation = generation
            self.type = type
            self.nameserver = nameserver
            self.attempt = attempt
            self.service = service
        }
    }

    private var channels: [String: [NameserverChannel]] = [:]
    private var resolutions: [ResolutionKey: ResolutionMachine] = [:]
    /// Responses c-ares handed over, handled after it returns (its callbacks may run inside
    /// `ares_query`, where the resolutions must not change under the caller).
    private var inbox: [(Question, NameserverResponse)] = []
    /// The SRV slots: which record each server follows.
    private var slots: [ObjectIdentifier: AddressAssignment.ServiceSlot] = [:]

    private func run() {
        ares_library_init(ARES_LIB_INIT_ALL)
        for section in settings.values {
            let nameserverCounters = counters.sections.first { $0.name == section.name }?.nameservers ?? []
            channels[section.name] = zip(section.nameservers, nameserverCounters).compactMap { ns, c in
                NameserverChannel(section: section, nameserver: ns, counters: c)
            }
        }
        defer { channels = [:] }
        adoptSlots()
        var nextScan = 0
        while running.load(ordering: .relaxed) {
            let now = MonotonicClock.milliseconds()
            if now >= nextScan || rescanRequested.exchange(false, ordering: .relaxed) {
                rescan(nowMs: now)
                nextScan = now + 500
            }
            for key in resolutions.keys where resolutions[key]!.isDue(nowMs: now) {
                let count = channels[key.section]?.count ?? 0
                guard count > 0 else { continue }
                if case .ask(let type, let generation) = resolutions[key]!.start(nameservers: count) {
                    ask(key, type, generation: generation)
                }
            }
            handleInbox()
            wait()
            handleInbox()
        }
    }

    /// Slots a previous worker filled (its state came with the reload) keep their records.
    private func adoptSlots() {
        for backend in backends {
            for server in backend.servers where isServiceSlot(server) {
                if case .inet(let host, let port) = server.configuredAddress, !host.hasPrefix("_") {
                    slots[ObjectIdentifier(server)] = AddressAssignment.ServiceSlot(
                        record: ServiceRecord(target: host, port: port ?? 0, weight: server.weight * 256, priority: 0),
                        lastSeenMs: MonotonicClock.milliseconds())
                }
            }
        }
    }

    private func isServiceSlot(_ server: Server) -> Bool {
        guard case .inet(let host, _) = server.settings.address else { return false }
        return host.hasPrefix("_")
    }

    /// The names servers go by now: new ones are resolved at once, those no server uses are
    /// dropped (their answers in flight become outdated).
    private func rescan(nowMs: Int) {
        var wanted = Set<ResolutionKey>()
        for backend in backends {
            for server in backend.servers where !server.deleted.load(ordering: .relaxed) {
                guard let section = Self.section(of: server, in: settings) else { continue }
                if case .inet(let srvName, _) = server.settings.address, srvName.hasPrefix("_") {
                    wanted.insert(ResolutionKey(section: section, name: srvName.lowercased(), kind: .service))
                }
                if let key = addressKey(server, section: section) { wanted.insert(key) }
            }
        }
        for key in resolutions.keys where !wanted.contains(key) { resolutions[key] = nil }
        for key in wanted where resolutions[key] == nil { resolutions[key] = ResolutionMachine(kind: key.kind, nowMs: nowMs) }
    }

    /// The address resolution a server needs: its name (or its SRV target), unless it is an IP.
    private func addressKey(_ server: Server, section: String) -> ResolutionKey? {
        guard case .inet(let host, _) = server.configuredAddress, !host.hasPrefix("_"),
              (try? SocketAddress(ipAddress: host, port: 0)) == nil else { return nil }
        return ResolutionKey(section: section, name: host.lowercased(), kind: .address(preferIPv4: server.settings.resolvePrefer == "ipv4"))
    }

    private func ask(_ key: ResolutionKey, _ type: DNSQueryType, generation: Int) {
        for (index, channel) in (channels[key.section] ?? []).enumerated() {
            send(Question(key: key, generation: generation, type: type, nameserver: index, attempt: 1, service: self), on: channel)
        }
    }

    private func send(_ question: Question, on channel: NameserverChannel) {
        let argument = Unmanaged.passRetained(question).toOpaque()
        channel.ask(question.key.name, question.type, callback: Self.callback, argument: argument)
    }

    private static let callback: ares_callback = { argument, status, _, buffer, length in
        guard let argument else { return }
        let question = Unmanaged<Question>.fromOpaque(argument).takeRetainedValue()
        // The channel is going away: nothing more to do.
        guard status != ARES_EDESTRUCTION, status != ARES_ECANCELLED else { return }
        let response: NameserverResponse
        switch status {
        case ARES_SUCCESS:
            if let buffer, length > 0 {
                response = .reply(DNSReply.decode(buffer, length: Int(length), type: question.type))
            } else {
                response = .reply(.invalid)
            }
        case ARES_ENODATA: response = .empty
        case ARES_ENOTFOUND: response = .nx
        case ARES_EREFUSED: response = .refused
        case ARES_ETIMEOUT: response = .timeout
        case ARES_ECONNREFUSED: response = .sendError
        case ARES_EBADRESP, ARES_EFORMERR: response = .reply(.invalid)
        default: response = .other
        }
        question.service.inbox.append((question, response))
    }

    /// Weighs the responses received: counts them, retries questions that timed out, and acts
    /// on what the resolutions decide.
    private func handleInbox() {
        var rounds = 0
        while !inbox.isEmpty, rounds < 1_000 {
            rounds += 1
            let batch = inbox
            inbox.removeAll()
            for (question, response) in batch { handle(question, response) }
        }
    }

    private func handle(_ question: Question, _ response: NameserverResponse) {
        guard let channel = channels[question.key.section]?[question.nameserver] else { return }
        let section = settings[question.key.section]
        let counters = channel.counters
        if let counter = response.counter { counters.add(counter) }
        guard var machine = resolutions[question.key] else { return }
        if response == .timeout, question.attempt < max(1, section?.resolveRetries ?? 3), question.generation == machine.generation {
            send(Question(key: question.key, generation: question.generation, type: question.type, nameserver: question.nameserver,
                          attempt: question.attempt + 1, service: self), on: channel)
            return
        }
        let now = MonotonicClock.milliseconds()
        let action = machine.receive(response, generation: question.generation, nameservers: channels[question.key.section]?.count ?? 1,
                                     nowMs: now, retryMs: Int(section?.timeoutResolveMs ?? 1_000), validMs: Int(section?.holdValidMs ?? 10_000))
        resolutions[question.key] = machine
        switch action {
        case .wait:
            break
        case .outdated:
            counters.add(.outdated)
        case .ask(let type, let generation):
            ask(question.key, type, generation: generation)
        case .succeeded(let reply):
            counters.add(.valid)
            switch reply {
            case .addresses(let addresses, let viaCNAME):
                if viaCNAME { counters.add(.cname) }
                applyAddresses(addresses, to: question.key, counters: counters)
            case .services(let records):
                applyServices(records, to: question.key, nowMs: now)
            default:
                break
            }
        case .failed(let failure):
            // The last answer holds for the failure's period, counted from the last valid one.
            guard now - machine.lastValidMs >= Int(section?.holdMs(failure.rawValue) ?? 30_000) else { return }
            if question.key.kind == .service {
                applyServices([], to: question.key, nowMs: now, cause: failure.maintenanceCause, dropAll: true)
            } else {
                applyAddresses([], to: question.key, counters: nil, cause: failure.maintenanceCause)
            }
        }
    }

    /// Servers of each backend that go by the resolved name share its addresses (each its own,
    /// unless `allow-dup-ip`); SRV slots whose target it is take theirs one by one, as HAProxy
    /// gives them the address the SRV answer came with. `update` counts an answer that moved
    /// a server.
    private func applyAddresses(_ addresses: [String], to key: ResolutionKey, counters: NameserverCounters?, cause: String = "No IP for server ") {
        guard let runtime, case .address(let preferIPv4) = key.kind else { return }
        let ipv6 = addresses.filter { $0.contains(":") }, ipv4 = addresses.filter { !$0.contains(":") }
        var moved = false
        for backend in backends {
            let servers = backend.servers.filter { server in
                guard let section = Self.section(of: server, in: settings), section == key.section else { return false }
                return addressKey(server, section: section) == key
            }
            guard let first = servers.first else { continue }
            let answer = AddressAssignment.ordered(ipv4: ipv4, ipv6: ipv6, preferIPv4: preferIPv4, nets: first.settings.resolveNets)
            let plain = servers.filter { !isServiceSlot($0) }
            var assigned = AddressAssignment.assign(current: plain.map { $0.socketAddress?.ipAddress },
                                                    allowDuplicates: plain.map(\.settings.resolveAllowDuplicateIP), answer: answer)
            let slotServers = servers.filter(isServiceSlot)
            for server in slotServers {
                assigned += AddressAssignment.assign(current: [server.socketAddress?.ipAddress], allowDuplicates: [true], answer: answer)
            }
            for (server, ip) in zip(plain + slotServers, assigned) {
                var port = 0
                if case .inet(_, let p) = server.configuredAddress { port = p ?? 0 }
                let address = ip.flatMap { try? SocketAddress(ipAddress: $0, port: port) }
                if address != server.socketAddress { moved = true }
                runtime.applyResolution(server, address, cause: cause)
            }
        }
        if moved { counters?.add(.update) }
    }

    /// SRV answers fill the slots of the templates naming the record: a target, its port and
    /// weight; the target is then resolved like a server's name. A slot without a record
    /// waits in maintenance, without a name.
    private func applyServices(_ records: [ServiceRecord], to key: ResolutionKey, nowMs: Int,
                               cause: String = "entry removed from SRV record", dropAll: Bool = false) {
        guard let runtime else { return }
        let obsolete = dropAll ? 0 : Int(settings[key.section]?.holdMs("obsolete") ?? 0)
        var targetsChanged = false
        for backend in backends {
            let servers = backend.servers.filter { server in
                guard Self.section(of: server, in: settings) == key.section, case .inet(let name, _) = server.settings.address else { return false }
                return name.lowercased() == key.name && !server.deleted.load(ordering: .relaxed)
            }
            guard !servers.isEmpty else { continue }
            let before = servers.map { slots[ObjectIdentifier($0)] ?? AddressAssignment.ServiceSlot() }
            let after = AddressAssignment.assign(slots: before, records: records, nowMs: nowMs, obsoleteMs: obsolete)
            for (i, server) in servers.enumerated() {
                slots[ObjectIdentifier(server)] = after[i]
                let old = before[i].record, new = after[i].record
                if let new, !server.settings.resolveIgnoreWeight, server.weight != new.serverWeight {
                    server.setWeight(new.serverWeight)
                }
                guard old?.target.lowercased() != new?.target.lowercased() || old?.port != new?.port else { continue }
                targetsChanged = true
                if let new {
                    runtime.logServerEvent(backend, "\(backend.name)/\(server.name) changed its FQDN from \(old?.target ?? "(null)") to \(new.target) by 'SRV record'")
                    server.updateAdmin { $0.insert(.fqdnChanged) }
                    runtime.applyResolution(server, nil, hostname: .inet(host: new.target, port: new.port), cause: "No IP for server ")
                } else {
                    server.updateAdmin { $0.remove(.fqdnChanged) }
                    runtime.applyResolution(server, nil, hostname: server.settings.address, cause: cause)
                }
            }
        }
        // The new targets are resolved now rather than at the next look.
        if targetsChanged { rescan(nowMs: nowMs) }
    }

    /// Waits for the channels' sockets (100 ms at most, so that a stop or a due resolution is
    /// seen) and lets c-ares read them and run its timers.
    private func wait() {
        let all = channels.values.flatMap { $0 }
        var fds: [pollfd] = []
        var owners: [NameserverChannel] = []
        var timeout = 100
        for channel in all {
            let mine = channel.pollDescriptors()
            fds += mine
            owners += Array(repeating: channel, count: mine.count)
            timeout = min(timeout, channel.nextTimeout(limit: 100))
        }
        if fds.isEmpty {
            usleep(UInt32(max(1, timeout)) * 1000)
        } else {
            _ = poll(&fds, nfds_t(fds.count), Int32(max(1, timeout)))
        }
        for (i, fd) in fds.enumerated() where fd.revents != 0 { owners[i].process(fd) }
        for channel in all { channel.processTimers() }
    }
}
