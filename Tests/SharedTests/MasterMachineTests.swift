import Testing
@testable import Shared

#if canImport(Glibc)
import Glibc
#endif

/// The supervisor's decisions, driven by injected events: no process, socket or clock.
@Suite struct MasterMachineTests {
    typealias Action = MasterMachine.Action

    static let listener = OwnedListener(key: "127.0.0.1:8080#-", fd: 20, frontend: "fe", address: "127.0.0.1:8080", backlog: 100)

    static func load(_ listeners: [OwnedListener] = [listener], handoff: Bool = true) -> MasterMachine.Load {
        MasterMachine.Load(sources: [.init(name: "h.cfg", text: "global\n")], listeners: listeners,
                           settings: .init(runtimeStateHandoff: handoff))
    }

    static func machine(_ state: MasterState = MasterState(binaryPath: "/hasp"), options: MasterMachine.Options = .init()) -> MasterMachine {
        MasterMachine(state: state, options: options, now: { 1_000_000 })
    }

    static func exited(_ code: Int32) -> ProcessStatus { ProcessStatus(code << 8) }
    static func killed(_ sig: Int32) -> ProcessStatus { ProcessStatus(sig) }

    static func logs(_ actions: [Action]) -> [String] {
        actions.compactMap { if case .log(_, let text) = $0 { text } else { nil } }
    }

    static func signals(_ actions: [Action]) -> [(pid_t, Int32)] {
        actions.compactMap { if case .signal(let pid, let sig) = $0 { (pid, sig) } else { nil } }
    }

    /// A master serving with worker `pid` (channel `pid + 1000`), after a first start.
    static func serving(pid: pid_t = 100) -> MasterMachine {
        var m = machine()
        _ = m.handle(.started(isReload: false))
        _ = m.handle(.loaded(load()))
        _ = m.handle(.spawned(pid: pid, channel: pid + 1000))
        _ = m.handle(.message(from: pid, ReceivedMessage(message: .ack(count: 1), descriptors: [])))
        _ = m.handle(.message(from: pid, ReceivedMessage(message: .ready(pid: pid), descriptors: [])))
        return m
    }

    /// The image after a re-exec from `serving(pid:)`: its worker is now an old one, and the
    /// new worker `newPid` is handed everything and awaited.
    static func reloading(from old: MasterMachine, newPid: pid_t = 200, client: Int32 = -1) -> MasterMachine {
        var state = old.state
        state.reloadClientFD = client
        state.reloads += 1
        var m = machine(state)
        _ = m.handle(.started(isReload: true))
        _ = m.handle(.loaded(load()))
        _ = m.handle(.spawned(pid: newPid, channel: newPid + 1000))
        _ = m.handle(.message(from: newPid, ReceivedMessage(message: .ack(count: 1), descriptors: [])))
        return m
    }

    @Test func aFirstStartHandsOffThenServes() {
        var m = Self.machine(options: .init(softStopPids: [7]))
        #expect(m.handle(.started(isReload: false)).isEmpty)
        #expect(m.isLoading)
        #expect(m.handle(.loaded(Self.load())) == [.spawnWorker])
        let spawned = m.handle(.spawned(pid: 100, channel: 1100))
        #expect(spawned == [
            .log(.notice, "Initializing new worker (100)"),
            .watch(pid: 100, channel: 1100, version: MasterWorkerProtocol.current),
            .send(to: 100, .config([.init(name: "h.cfg", text: "global\n")]), descriptors: [], closing: false),
            .send(to: 100, .runtimeState(RuntimeStateRecord()), descriptors: [], closing: false),
            .send(to: 100, .listeners(count: 1), descriptors: [], closing: false),
            .send(to: 100, .listenerBatch([.init(frontend: "fe", address: "127.0.0.1:8080", backlog: 100)]), descriptors: [20], closing: false),
            .arm(.acknowledgement, milliseconds: 10_000),
        ])
        #expect(m.handle(.message(from: 100, ReceivedMessage(message: .ack(count: 1), descriptors: []))) == [
            .disarm(.acknowledgement), .send(to: 100, .go, descriptors: [], closing: false), .arm(.ready, milliseconds: 60_000),
        ])
        let ready = m.handle(.message(from: 100, ReceivedMessage(message: .ready(pid: 100), descriptors: [])))
        #expect(ready == [.disarm(.ready), .log(.notice, "Loading success."), .writePidfile, .signal(pid: 7, SIGUSR1), .reportReady])
        #expect(!m.isLoading)
        #expect(m.state.workers.map(\.pid) == [100])
        #expect(m.state.listeners == [Self.listener])
    }

    @Test func aSecondBatchWaitsForTheFirstAcknowledgement() {
        var m = Self.machine()
        let listeners = (0..<70).map { OwnedListener(key: "k\($0)", fd: Int32(100 + $0), frontend: "fe", address: "a", backlog: 1) }
        _ = m.handle(.started(isReload: false))
        _ = m.handle(.loaded(Self.load(listeners)))
        let first = m.handle(.spawned(pid: 5, channel: 6))
        #expect(first.filter { if case .send(_, .listenerBatch, _, _) = $0 { true } else { false } }.count == 1)
        // An acknowledgement of the wrong size fails the start.
        var wrong = m
        let failed = wrong.handle(.message(from: 5, ReceivedMessage(message: .ack(count: 6), descriptors: [])))
        #expect(failed.contains(.signal(pid: 5, SIGKILL)))
        let second = m.handle(.message(from: 5, ReceivedMessage(message: .ack(count: 64), descriptors: [])))
        #expect(second.contains(.send(to: 5, .listenerBatch(listeners[64...].map { .init(frontend: $0.frontend, address: $0.address, backlog: $0.backlog) }),
                                      descriptors: listeners[64...].map(\.fd), closing: false)))
        #expect(!second.contains(.send(to: 5, .go, descriptors: [], closing: false)))
    }

    /// The required outcome: a slow new worker does not delay a stop.
    @Test func aStopDuringASlowStartActsAtOnce() {
        var m = Self.reloading(from: Self.serving(), client: 9)
        // The new worker got GO and is awaited; SIGTERM arrives.
        let stop = m.handle(.signal(SIGTERM))
        #expect(Self.signals(stop).map(\.0) == [100, 200])
        #expect(Self.signals(stop).allSatisfy { $0.1 == SIGTERM })
        #expect(stop.contains(.unwatch(pid: 200)) && stop.contains(.disarm(.ready)))
        #expect(m.stopping == 0)
        #expect(!Self.logs(m.handle(.childExited(pid: 100, status: Self.killed(SIGTERM)))).isEmpty)
        let last = m.handle(.childExited(pid: 200, status: Self.killed(SIGTERM)))
        #expect(last.contains(.answerReloadClient(9, success: false)))
        #expect(last.last == .exit(0))
    }

    /// The required outcome: a slow new worker does not delay reaping.
    @Test func aWorkerExitingDuringASlowStartIsReapedAtOnce() {
        var m = Self.reloading(from: Self.serving())
        let reaped = m.handle(.childExited(pid: 100, status: Self.killed(SIGKILL)))
        #expect(reaped == [.unwatch(pid: 100), .log(.warning, "Former worker (100) exited with code 137 (Killed)")])
        #expect(m.state.workers.isEmpty)
        #expect(m.newWorker?.pid == 200)
    }

    /// The required outcome: hand-overs during a slow start wait for the new worker, without
    /// waiting for it; with a current worker they are relayed at once.
    @Test func handOversAreRelayedOrKeptDuringASlowStart() {
        var serving = Self.serving()
        #expect(serving.handle(.message(from: 100, ReceivedMessage(message: .handover(frontend: "fe"), descriptors: [33])))
                    == [.send(to: 100, .adopt(frontend: "fe"), descriptors: [33], closing: true)])
        var m = Self.reloading(from: serving)
        #expect(m.handle(.message(from: 100, ReceivedMessage(message: .handover(frontend: "fe"), descriptors: [34]))).isEmpty)
        #expect(m.waitingHandovers.map(\.fd) == [34])
        let ready = m.handle(.message(from: 200, ReceivedMessage(message: .ready(pid: 200), descriptors: [])))
        #expect(ready.contains(.send(to: 200, .adopt(frontend: "fe"), descriptors: [34], closing: true)))
        #expect(ready.contains(.signal(pid: 100, SIGUSR1)))
        #expect(m.state.workers.map(\.leaving) == [true, false])
    }

    @Test func aNewWorkerThatNeverGetsReadyFailsTheReloadAndTheOldOneServesOn() {
        let newListener = OwnedListener(key: "new", fd: 21, frontend: "fe2", address: "b", backlog: 1)
        var state = Self.serving().state
        state.reloadClientFD = 9
        var m = Self.machine(state)
        _ = m.handle(.started(isReload: true))
        _ = m.handle(.loaded(Self.load([Self.listener, newListener])))
        _ = m.handle(.spawned(pid: 200, channel: 1200))
        _ = m.handle(.message(from: 200, ReceivedMessage(message: .ack(count: 2), descriptors: [])))
        _ = m.handle(.message(from: 100, ReceivedMessage(message: .handover(frontend: "fe"), descriptors: [35])))
        let timeout = m.handle(.timerFired(.ready))
        #expect(timeout.contains(.signal(pid: 200, SIGKILL)) && timeout.contains(.unwatch(pid: 200)))
        #expect(Self.logs(timeout) == ["master: the new worker (200) did not report READY in time"])
        // The load ends when the killed worker is reaped.
        let reaped = m.handle(.childExited(pid: 200, status: Self.killed(SIGKILL)))
        #expect(reaped.contains(.close(21)) && !reaped.contains(.close(20)))
        #expect(reaped.contains(.send(to: 100, .adopt(frontend: "fe"), descriptors: [35], closing: true)))
        #expect(reaped.contains(.answerReloadClient(9, success: false)))
        #expect(Self.logs(reaped).first == "Failed to load worker (200) exited with code 137 (Killed)")
        #expect(m.state.workers.map(\.leaving) == [false])
        #expect(m.state.failedReloads == 1 && m.state.lastReloadFailed)
        // A stale timer changes nothing.
        #expect(m.handle(.timerFired(.ready)).isEmpty)
    }

    @Test func aFirstStartWhoseWorkerDiesExits() {
        var m = Self.machine()
        _ = m.handle(.started(isReload: false))
        _ = m.handle(.loaded(Self.load()))
        _ = m.handle(.spawned(pid: 100, channel: 1100))
        #expect(m.handle(.channelClosed(pid: 100)).contains(.signal(pid: 100, SIGKILL)))
        #expect(m.handle(.childExited(pid: 100, status: Self.exited(1))).last == .exit(1))
        var failed = Self.machine()
        _ = failed.handle(.started(isReload: false))
        #expect(failed.handle(.loadFailed) == [.exit(1)])
    }

    @Test func aReloadAsksTheCurrentWorkerThenReexecutes() {
        var m = Self.serving()
        let asked = m.handle(.reloadRequested(client: 9, hard: true))
        #expect(asked == [.send(to: 100, .runtimeStateRequest, descriptors: [], closing: false), .arm(.runtimeState, milliseconds: 2_000)])
        // Hand-overs and exits are still handled meanwhile.
        #expect(m.handle(.childExited(pid: 55, status: Self.exited(0))) == [.log(.warning, "Process 55 exited with code 0 (Exit)")])
        #expect(m.handle(.message(from: 90, ReceivedMessage(message: .handover(frontend: "fe"), descriptors: [36])))
                    == [.send(to: 100, .adopt(frontend: "fe"), descriptors: [36], closing: true)])
        let answered = m.handle(.message(from: 100, ReceivedMessage(message: .runtimeState(CodecSamples.runtimeState), descriptors: [])))
        #expect(answered == [.disarm(.runtimeState), .log(.notice, "Reloading HAProxy"), .reexec])
        #expect(m.state.reloadClientFD == 9 && m.state.hardReload && m.state.reloads == 1)
        #expect(m.state.runtimeState == CodecSamples.runtimeState)
        let failed = m.handle(.execFailed("no exec"))
        #expect(failed == [.log(.alert, "no exec"), .answerReloadClient(9, success: false)])
        #expect(m.state.reloads == 0 && m.state.failedReloads == 1)
    }

    @Test func aSilentWorkerCostsTheRuntimeStateOnly() {
        var m = Self.serving()
        _ = m.handle(.reloadRequested(client: -1, hard: false))
        let timeout = m.handle(.timerFired(.runtimeState))
        #expect(Self.logs(timeout).first == "master: the current worker (100) did not report its runtime state; reloading without it.")
        #expect(timeout.last == .reexec)
        #expect(m.state.runtimeState.isEmpty)
        // Its late answer is ignored.
        #expect(m.handle(.message(from: 100, ReceivedMessage(message: .runtimeState(CodecSamples.runtimeState), descriptors: []))).isEmpty)
    }

    /// Workers of a protocol-0 binary: their runtime state comes over the CLI, in text, and
    /// what is sent to them is encoded by their link in their protocol.
    @Test func aPreviousVersionWorkerIsAskedOverTheCLI() throws {
        var state = try MasterState.decode(Array(MasterStateRecordTests.previousVersionState.utf8))
        state.reloadClientFD = -1
        var m = Self.machine(state)
        let started = m.handle(.started(isReload: true))
        #expect(started.contains(.watch(pid: 4243, channel: 8, version: MasterWorkerProtocol.legacy)))
        _ = m.handle(.loaded(Self.load()))
        _ = m.handle(.spawned(pid: 300, channel: 1300))
        _ = m.handle(.message(from: 300, ReceivedMessage(message: .ack(count: 1), descriptors: [])))
        _ = m.handle(.message(from: 300, ReceivedMessage(message: .ready(pid: 300), descriptors: [])))
        // A protocol-0 worker draining hands over in text; the link decoded it already.
        #expect(m.handle(.message(from: 4242, ReceivedMessage(message: .handover(frontend: "fe"), descriptors: [40])))
                    == [.send(to: 300, .adopt(frontend: "fe"), descriptors: [40], closing: true)])
        #expect(m.state.workers.map(\.protocolVersion) == [0, 0, MasterWorkerProtocol.current])

        var legacy = Self.machine(state)
        legacy.state.workers = [WorkerRecord(pid: 4243, ipcFD: 8, reloads: 0, startedAt: 0, leaving: false, protocolVersion: 0)]
        legacy.phase = .serving
        #expect(legacy.handle(.reloadRequested(client: -1, hard: false)) == [.fetchLegacyRuntimeState(pid: 4243), .arm(.runtimeState, milliseconds: 2_000)])
        #expect(legacy.handle(.legacyRuntimeState(CodecSamples.runtimeState)).last == .reexec)
        #expect(legacy.state.runtimeState == CodecSamples.runtimeState)
    }

    @Test func reloadsDuringALoadWaitForIt() {
        var m = Self.reloading(from: Self.serving())
        #expect(m.handle(.reloadRequested(client: 9, hard: false)).isEmpty)
        #expect(m.handle(.reloadRequested(client: 10, hard: true)) == [.refuseReload(10, reason: "A reload is already pending.")])
        #expect(m.handle(.signal(SIGUSR2)).isEmpty)
        let ready = m.handle(.message(from: 200, ReceivedMessage(message: .ready(pid: 200), descriptors: [])))
        // The deferred reload starts as soon as the master serves.
        #expect(ready.suffix(2) == [.send(to: 200, .runtimeStateRequest, descriptors: [], closing: false), .arm(.runtimeState, milliseconds: 2_000)])
        guard case .fetchingRuntimeState(let request, _) = m.phase else {
            Issue.record("no reload in progress")
            return
        }
        #expect(request.client == 9 && request.hard)
    }

    @Test func aStoppingMasterRefusesReloadsAndExitsWhenItsWorkersAreGone() {
        var m = Self.serving(pid: 100)
        _ = m.handle(.reloadRequested(client: 9, hard: false))
        let stop = m.handle(.signal(SIGINT))
        #expect(stop.contains(.refuseReload(9, reason: "The master is stopping.")))
        #expect(stop.contains(.signal(pid: 100, SIGINT)))
        #expect(m.handle(.reloadRequested(client: 11, hard: false)) == [.refuseReload(11, reason: "The master is stopping.")])
        // The worker's late answer does not re-execute a stopping master.
        #expect(!m.handle(.message(from: 100, ReceivedMessage(message: .runtimeState(RuntimeStateRecord()), descriptors: []))).contains(.reexec))
        let end = m.handle(.childExited(pid: 100, status: Self.exited(130)))
        #expect(end.last == .exit(130))
    }

    @Test func aCrashingCurrentWorkerStopsEverything() {
        var m = Self.reloading(from: Self.serving(pid: 100), newPid: 200)
        _ = m.handle(.message(from: 200, ReceivedMessage(message: .ready(pid: 200), descriptors: [])))
        let crash = m.handle(.childExited(pid: 200, status: Self.killed(SIGSEGV)))
        #expect(Self.logs(crash).contains("exit-on-failure: killing every processes with SIGTERM"))
        #expect(Self.signals(crash).map(\.0) == [100])
        #expect(m.handle(.childExited(pid: 100, status: Self.exited(0))).last == .exit(139))
    }

    @Test func aMasterThatLostItsStateServesOnWithoutReloading() {
        var m = Self.machine()
        _ = m.handle(.startedWithoutState(children: [100, 101]))
        #expect(m.state.workers.map(\.pid) == [100, 101])
        #expect(m.handle(.reloadRequested(client: 9, hard: false)).last == .refuseReload(9, reason: "The master lost its state: stop and start hasp instead."))
        #expect(m.handle(.signal(SIGUSR2)).allSatisfy { if case .log = $0 { true } else { false } })
        let stop = m.handle(.signal(SIGTERM))
        #expect(Self.signals(stop).map(\.0) == [100, 101])
        _ = m.handle(.childExited(pid: 100, status: Self.killed(SIGTERM)))
        #expect(m.handle(.childExited(pid: 101, status: Self.killed(SIGTERM))).last == .exit(0))
    }
}
