#if canImport(Glibc)
import Glibc
#endif

/// What the master hands a new worker: the configuration it validated, the previous worker's
/// runtime changes, and its listeners. On the wire: `config`, `runtimeState`,
/// `listeners(count)`, then batches of at most `IPCChannel.maxDescriptors` listeners, each
/// acknowledged, then `go`.
public struct WorkerHandoff: Sendable {
    public typealias Listener = PassedListener

    public var sources: [ConfigParser.Source]
    /// The TLS files the configuration names, as the master read them.
    public var files: ConfigFiles.Bundle
    public var listeners: [Listener]
    /// What the previous worker changed at run time, to apply on top.
    public var runtimeState: RuntimeStateRecord

    public init(sources: [ConfigParser.Source], files: ConfigFiles.Bundle = ConfigFiles.Bundle(), listeners: [Listener],
                runtimeState: RuntimeStateRecord = RuntimeStateRecord()) {
        self.sources = sources
        self.files = files
        self.listeners = listeners
        self.runtimeState = runtimeState
    }

    /// The listener batches, in order.
    public var batches: [[Listener]] {
        stride(from: 0, to: listeners.count, by: IPCChannel.maxDescriptors).map {
            Array(listeners[$0..<min(listeners.count, $0 + IPCChannel.maxDescriptors)])
        }
    }

    /// What precedes the first batch.
    public var preamble: [MasterWorkerMessage] {
        (files.isEmpty ? [.config(sources)] : [.config(sources), .files(files)])
            + [.runtimeState(runtimeState), .listeners(count: listeners.count)]
    }

    public static func message(for batch: [Listener]) -> MasterWorkerMessage {
        .listenerBatch(batch.map { .init(frontend: $0.frontend, address: $0.address, backlog: $0.backlog) })
    }

    /// Master side, blocking (tests, and any caller that may wait): everything, each batch
    /// acknowledged within `ackTimeoutMs`. The supervisor drives the same sequence from events.
    public func send(over channel: IPCChannel, ackTimeoutMs: Int32 = 10_000) throws(IPCChannel.Failure) {
        for message in preamble { try channel.send(message) }
        for batch in batches {
            try channel.send(Self.message(for: batch), descriptors: batch.map(\.fd))
            guard let reply = try channel.receiveMessage(timeoutMs: ackTimeoutMs), reply.message == .ack(count: batch.count) else {
                throw IPCChannel.Failure(description: "worker did not acknowledge its listeners")
            }
        }
        try channel.send(.go)
    }

    /// Worker side: the inverse of `send`. Any message out of sequence is an error.
    public static func receive(over channel: IPCChannel, timeoutMs: Int32 = 30_000) throws(IPCChannel.Failure) -> WorkerHandoff {
        func next() throws(IPCChannel.Failure) -> ReceivedMessage {
            guard let received = try channel.receiveMessage(timeoutMs: timeoutMs) else {
                throw IPCChannel.Failure(description: "master closed the channel")
            }
            return received
        }
        func unexpected(_ received: ReceivedMessage, expecting: String) -> IPCChannel.Failure {
            for fd in received.descriptors { _ = Glibc.close(fd) }
            return IPCChannel.Failure(description: "unexpected \(received.message.verb), expecting \(expecting)")
        }
        let first = try next()
        guard case .config(let sources) = first.message else { throw unexpected(first, expecting: "CONFIG") }
        var second = try next()
        var files = ConfigFiles.Bundle()
        if case .files(let bundle) = second.message {
            files = bundle
            second = try next()
        }
        guard case .runtimeState(let state) = second.message else { throw unexpected(second, expecting: "STATE") }
        let third = try next()
        guard case .listeners(let count) = third.message else { throw unexpected(third, expecting: "LISTENERS") }
        var listeners: [Listener] = []
        while listeners.count < count {
            let received = try next()
            guard case .listenerBatch(let batch) = received.message else { throw unexpected(received, expecting: "a listener batch") }
            for (l, fd) in zip(batch, received.descriptors) {
                listeners.append(Listener(frontend: l.frontend, address: l.address, backlog: l.backlog, fd: fd))
            }
            try channel.send(.ack(count: batch.count))
        }
        let last = try next()
        guard last.message == .go else { throw unexpected(last, expecting: "GO") }
        return WorkerHandoff(sources: sources, files: files, listeners: listeners, runtimeState: state)
    }
}
