import CHaspSys

#if canImport(Glibc)
import Glibc
#endif

/// One end of the master-worker socketpair (`SOCK_SEQPACKET`: message boundaries are kept and
/// descriptors travel with the message they belong to). Blocking calls, used before the event
/// loops start and on the master's own queue.
public struct IPCChannel: Sendable {
    public let fd: Int32

    public init(fd: Int32) { self.fd = fd }

    public struct Failure: Error, CustomStringConvertible, Sendable {
        public var description: String
    }

    /// A connected pair; both ends close-on-exec.
    public static func pair() throws(Failure) -> (IPCChannel, IPCChannel) {
        var fds: [Int32] = [0, 0]
        guard socketpair(AF_UNIX, Int32(SOCK_SEQPACKET.rawValue | SOCK_CLOEXEC.rawValue), 0, &fds) == 0 else {
            throw Failure(description: "socketpair: \(ConfigLoader.errorText(errno))")
        }
        return (IPCChannel(fd: fds[0]), IPCChannel(fd: fds[1]))
    }

    public static let maxMessage = 60_000
    public static let maxDescriptors = 64

    /// `waiting: false` never blocks: a full socket fails the send at once (for callers on an
    /// event loop).
    public func send(_ bytes: [UInt8], descriptors: [Int32] = [], waiting: Bool = true) throws(Failure) {
        let flags = waiting ? Int32(0) : Int32(MSG_DONTWAIT)
        let n = bytes.withUnsafeBytes { raw in
            descriptors.withUnsafeBufferPointer { fds in
                hasp_send_fds_flags(fd, raw.baseAddress, raw.count, fds.baseAddress, Int32(fds.count), flags)
            }
        }
        guard n == bytes.count else { throw Failure(description: "send: \(ConfigLoader.errorText(errno))") }
    }

    public func send(_ text: String, descriptors: [Int32] = [], waiting: Bool = true) throws(Failure) {
        try send(Array(text.utf8), descriptors: descriptors, waiting: waiting)
    }

    /// Waits up to `timeoutMs` (-1: forever) for one message. Nil on EOF.
    public func receive(timeoutMs: Int32 = -1) throws(Failure) -> (bytes: [UInt8], descriptors: [Int32])? {
        var p = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
        while true {
            let r = poll(&p, 1, timeoutMs)
            if r < 0 && errno == EINTR { continue }
            if r == 0 { throw Failure(description: "timed out") }
            if r < 0 { throw Failure(description: "poll: \(ConfigLoader.errorText(errno))") }
            break
        }
        var buffer = [UInt8](repeating: 0, count: Self.maxMessage + 1)
        var fds = [Int32](repeating: -1, count: Self.maxDescriptors)
        var count: Int32 = 0
        let n = buffer.withUnsafeMutableBytes { raw in
            fds.withUnsafeMutableBufferPointer { f in
                hasp_recv_fds(fd, raw.baseAddress, raw.count, f.baseAddress, Int32(Self.maxDescriptors), &count)
            }
        }
        if n < 0 { throw Failure(description: "recv: \(ConfigLoader.errorText(errno))") }
        if n == 0 && count == 0 { return nil }
        return (Array(buffer[0..<n]), Array(fds[0..<Int(count)]))
    }

    public func receiveText(timeoutMs: Int32 = -1) throws(Failure) -> (text: String, descriptors: [Int32])? {
        guard let (bytes, fds) = try receive(timeoutMs: timeoutMs) else { return nil }
        return (String(decoding: bytes, as: UTF8.self), fds)
    }

    public func close() { _ = Glibc.close(fd) }
}

/// What the master hands a new worker: the configuration it validated, and its listeners.
public struct WorkerHandoff: Sendable {
    public typealias Listener = PassedListener

    public var sources: [ConfigParser.Source]
    public var listeners: [Listener]
    /// What the previous worker changed at run time (`_runtime_state`), to apply on top.
    public var runtimeState: String

    public init(sources: [ConfigParser.Source], listeners: [Listener], runtimeState: String = "") {
        self.sources = sources
        self.listeners = listeners
        self.runtimeState = runtimeState
    }

    /// Master side: configuration in chunks, then listener batches, each batch acknowledged.
    public func send(over channel: IPCChannel, ackTimeoutMs: Int32 = 10_000) throws(IPCChannel.Failure) {
        var blob: [UInt8] = []
        for source in sources {
            blob.append(contentsOf: Array(source.name.utf8) + [0])
            blob.append(contentsOf: Array(source.text.utf8) + [0])
        }
        try channel.send("CONFIG \(blob.count)")
        var offset = 0
        while offset < blob.count {
            let end = min(blob.count, offset + IPCChannel.maxMessage - 16)
            try channel.send(Array(blob[offset..<end]))
            offset = end
        }
        let state = Array(runtimeState.utf8)
        try channel.send("STATE \(state.count)")
        offset = 0
        while offset < state.count {
            let end = min(state.count, offset + IPCChannel.maxMessage - 16)
            try channel.send(Array(state[offset..<end]))
            offset = end
        }
        try channel.send("LISTENERS \(listeners.count)")
        var index = 0
        while index < listeners.count {
            let batch = Array(listeners[index..<min(listeners.count, index + IPCChannel.maxDescriptors)])
            let text = batch.map { "\($0.frontend)\t\($0.address)\t\($0.backlog)" }.joined(separator: "\n")
            try channel.send(text, descriptors: batch.map(\.fd))
            guard let reply = try channel.receiveText(timeoutMs: ackTimeoutMs), reply.text == "ACK \(batch.count)" else {
                throw IPCChannel.Failure(description: "worker did not acknowledge its listeners")
            }
            index += batch.count
        }
        try channel.send("GO")
    }

    /// Worker side: the inverse of `send`.
    public static func receive(over channel: IPCChannel, timeoutMs: Int32 = 30_000) throws(IPCChannel.Failure) -> WorkerHandoff {
        func next() throws(IPCChannel.Failure) -> (bytes: [UInt8], descriptors: [Int32]) {
            guard let message = try channel.receive(timeoutMs: timeoutMs) else {
                throw IPCChannel.Failure(description: "master closed the channel")
            }
            return message
        }
        let header = String(decoding: try next().bytes, as: UTF8.self)
        guard header.hasPrefix("CONFIG "), let total = Int(header.dropFirst(7)), total >= 0 else {
            throw IPCChannel.Failure(description: "unexpected message '\(header)'")
        }
        var blob: [UInt8] = []
        while blob.count < total { blob.append(contentsOf: try next().bytes) }
        var sources: [ConfigParser.Source] = []
        let parts = blob.split(separator: 0, omittingEmptySubsequences: false)
        var i = 0
        while i + 1 < parts.count {
            sources.append(ConfigParser.Source(name: String(decoding: parts[i], as: UTF8.self), text: String(decoding: parts[i + 1], as: UTF8.self)))
            i += 2
        }
        let stateHeader = String(decoding: try next().bytes, as: UTF8.self)
        guard stateHeader.hasPrefix("STATE "), let stateSize = Int(stateHeader.dropFirst(6)), stateSize >= 0 else {
            throw IPCChannel.Failure(description: "unexpected message '\(stateHeader)'")
        }
        var state: [UInt8] = []
        while state.count < stateSize { state.append(contentsOf: try next().bytes) }
        let listHeader = String(decoding: try next().bytes, as: UTF8.self)
        guard listHeader.hasPrefix("LISTENERS "), let count = Int(listHeader.dropFirst(10)) else {
            throw IPCChannel.Failure(description: "unexpected message '\(listHeader)'")
        }
        var listeners: [Listener] = []
        while listeners.count < count {
            let (bytes, fds) = try next()
            let lines = String(decoding: bytes, as: UTF8.self).split(separator: "\n")
            guard lines.count == fds.count else {
                for fd in fds { _ = Glibc.close(fd) }
                throw IPCChannel.Failure(description: "listener batch with \(lines.count) names and \(fds.count) descriptors")
            }
            for (line, fd) in zip(lines, fds) {
                let fields = line.split(separator: "\t", omittingEmptySubsequences: false)
                guard fields.count == 3, let backlog = Int32(fields[2]) else {
                    throw IPCChannel.Failure(description: "bad listener line '\(line)'")
                }
                listeners.append(Listener(frontend: String(fields[0]), address: String(fields[1]), backlog: backlog, fd: fd))
            }
            try channel.send("ACK \(lines.count)")
        }
        guard String(decoding: try next().bytes, as: UTF8.self) == "GO" else {
            throw IPCChannel.Failure(description: "expected GO")
        }
        return WorkerHandoff(sources: sources, listeners: listeners, runtimeState: String(decoding: state, as: UTF8.self))
    }
}
