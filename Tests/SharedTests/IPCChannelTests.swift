import Dispatch
import Testing
@testable import Shared

#if canImport(Glibc)
import Glibc
#endif

/// Messages over a real `SOCK_SEQPACKET` pair, descriptors included.
@Suite struct IPCChannelTests {
    /// A pipe's read end stands for a listener: something real to pass and check.
    static func descriptor() -> Int32 {
        var fds: [Int32] = [0, 0]
        _ = pipe(&fds)
        close(fds[1])
        return fds[0]
    }

    static func isOpen(_ fd: Int32) -> Bool { fcntl(fd, F_GETFD) != -1 }

    @Test func aLargeMessageAndItsDescriptorsCrossTheChannel() throws {
        let (a, b) = try IPCChannel.pair()
        defer { a.close(); b.close() }
        let big = MasterWorkerMessage.config([.init(name: "big", text: String(repeating: "y", count: 150_000))])
        // The sender blocks once the socket buffer is full: read on another thread.
        let reader = DispatchQueue(label: "reader")
        nonisolated(unsafe) var received: ReceivedMessage?
        let done = DispatchSemaphore(value: 0)
        reader.async {
            received = try? b.receiveMessage(timeoutMs: 10_000)
            done.signal()
        }
        try a.send(big)
        done.wait()
        #expect(received?.message == big)
        let fd = Self.descriptor()
        defer { close(fd) }
        try a.send(.handover(frontend: "fe"), descriptors: [fd], waiting: false)
        let handover = try #require(try b.receiveMessage(timeoutMs: 1_000))
        #expect(handover.message == .handover(frontend: "fe"))
        #expect(handover.descriptors.count == 1 && Self.isOpen(handover.descriptors[0]))
        close(handover.descriptors[0])
    }

    @Test func aMessageWithTheWrongDescriptorsIsNotSent() throws {
        let (a, b) = try IPCChannel.pair()
        defer { a.close(); b.close() }
        #expect(throws: IPCChannel.Failure.self) { try a.send(.adopt(frontend: "fe")) }
        let big = MasterWorkerMessage.config([.init(name: "big", text: String(repeating: "y", count: 150_000))])
        #expect(throws: IPCChannel.Failure.self) { try a.send(big, waiting: false) }
    }

    @Test func aProtocolZeroPeerGetsText() throws {
        let (a, b) = try IPCChannel.pair()
        defer { a.close(); b.close() }
        let fd = Self.descriptor()
        defer { close(fd) }
        try WorkerChannel(fd: a.fd, version: MasterWorkerProtocol.legacy).send(.adopt(frontend: "fe"), descriptors: [fd])
        let raw = try #require(try b.receive(timeoutMs: 1_000))
        #expect(String(decoding: raw.bytes, as: UTF8.self) == "ADOPT fe")
        #expect(raw.descriptors.count == 1)
        close(raw.descriptors[0])
        try a.send("HANDOVER be", descriptors: [fd])
        let decoded = try #require(try b.receiveMessage(version: MasterWorkerProtocol.legacy, timeoutMs: 1_000))
        #expect(decoded.message == .handover(frontend: "be"))
        close(decoded.descriptors[0])
        #expect(throws: IPCChannel.Failure.self) {
            try WorkerChannel(fd: a.fd, version: MasterWorkerProtocol.legacy).send(.runtimeStateRequest)
        }
    }

    @Test func aGarbledMessageIsAnErrorAndTheNextOneIsRead() throws {
        let (a, b) = try IPCChannel.pair()
        defer { a.close(); b.close() }
        let fd = Self.descriptor()
        try a.send([0x00, 0x48, 0x57, 1, 99, 0, 0, 0, 0, 0], descriptors: [fd])
        close(fd)
        #expect(throws: IPCChannel.Failure.self) { try b.receiveMessage(timeoutMs: 1_000) }
        try a.send(.go)
        #expect(try b.receiveMessage(timeoutMs: 1_000)?.message == .go)
        a.close()
        #expect(try b.receiveMessage(timeoutMs: 1_000) == nil)
    }

    @Test func theHandOffCarriesEverythingInBatches() throws {
        let (master, worker) = try IPCChannel.pair()
        defer { master.close(); worker.close() }
        let fds = (0..<130).map { _ in Self.descriptor() }
        defer { for fd in fds { close(fd) } }
        let listeners = fds.enumerated().map { PassedListener(frontend: "fe\($0.offset)", address: "127.0.0.1:\(1000 + $0.offset)", backlog: 10, fd: $0.element) }
        let handoff = WorkerHandoff(sources: [.init(name: "h.cfg", text: "global\n")], listeners: listeners, runtimeState: CodecSamples.runtimeState)
        #expect(handoff.batches.map(\.count) == [64, 64, 2])
        nonisolated(unsafe) var received: WorkerHandoff?
        let done = DispatchSemaphore(value: 0)
        DispatchQueue(label: "worker").async {
            received = try? WorkerHandoff.receive(over: worker, timeoutMs: 10_000)
            done.signal()
        }
        try handoff.send(over: master)
        done.wait()
        let got = try #require(received)
        #expect(got.sources == handoff.sources)
        #expect(got.runtimeState == CodecSamples.runtimeState)
        #expect(got.listeners.map(\.frontend) == listeners.map(\.frontend))
        #expect(got.listeners.map(\.address) == listeners.map(\.address))
        #expect(got.listeners.allSatisfy { Self.isOpen($0.fd) })
        for l in got.listeners { close(l.fd) }
    }

    @Test func theHandOffRefusesAMessageOutOfSequence() throws {
        let (master, worker) = try IPCChannel.pair()
        defer { master.close(); worker.close() }
        try master.send(.go)
        #expect(throws: IPCChannel.Failure.self) { try WorkerHandoff.receive(over: worker, timeoutMs: 1_000) }
    }

    @Test func aWriterNeverWaitsWhenAskedNotTo() throws {
        let (a, b) = try IPCChannel.pair()
        defer { a.close(); b.close() }
        let writer = ChannelWriter(a)
        let fd = Self.descriptor()
        defer { close(fd) }
        // Fill the socket: a send that may not wait then fails instead of blocking.
        var sent = 0
        while (try? writer.send(.handover(frontend: String(repeating: "f", count: 4_000)), descriptors: [fd], waiting: false)) != nil {
            sent += 1
            if sent > 100_000 { break }
        }
        #expect(sent > 0 && sent < 100_000)
        while let m = try? b.receive(timeoutMs: 0) {
            for d in m.descriptors { close(d) }
        }
    }
}
