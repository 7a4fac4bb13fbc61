import CHaspSys

#if canImport(Glibc)
import Glibc
#endif

/// One end of the master-worker socketpair (`SOCK_SEQPACKET`: message boundaries are kept and
/// descriptors travel with the message they belong to). Calls block unless told otherwise
/// (`waiting: false`, `timeoutMs: 0`): the master sends from each worker's outbox and reads when
/// a read source fires; a worker from its channel thread, or without waiting from a loop.
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

    public func close() { _ = Glibc.close(fd) }

    // MARK: - Messages

    /// Sends one message in the protocol `version` speaks, its descriptors attached to its last
    /// datagram. A message of several datagrams is only sent `waiting`: a full socket half-way
    /// through would leave the peer with a partial message.
    public func send(_ message: MasterWorkerMessage, descriptors: [Int32] = [], version: UInt8 = MasterWorkerProtocol.current,
                     waiting: Bool = true) throws(Failure) {
        guard descriptors.count == message.descriptorCount else {
            throw Failure(description: "\(message.verb) needs \(message.descriptorCount) descriptor(s), not \(descriptors.count)")
        }
        if version == MasterWorkerProtocol.legacy {
            guard let text = LegacyVerbs.encode(message) else {
                throw Failure(description: "\(message.verb) cannot be sent to a protocol-0 worker")
            }
            try send(text, descriptors: descriptors, waiting: waiting)
            return
        }
        let datagrams = MasterWorkerCodec.encode(message)
        guard waiting || datagrams.count == 1 else { throw Failure(description: "\(message.verb) is too large to send without waiting") }
        for (i, datagram) in datagrams.enumerated() {
            try send(datagram, descriptors: i == datagrams.count - 1 ? descriptors : [], waiting: waiting)
        }
    }

    /// Waits up to `timeoutMs` (-1: forever) for each datagram of one whole message. Nil on EOF.
    /// A malformed message is an error (its descriptors are closed).
    public func receiveMessage(version: UInt8 = MasterWorkerProtocol.current,
                               timeoutMs: Int32 = -1) throws(Failure) -> ReceivedMessage? {
        var decoder = MessageDecoder(version: version)
        while true {
            guard let (bytes, fds) = try receive(timeoutMs: timeoutMs) else { return nil }
            switch decoder.feed(bytes, descriptors: fds) {
            case .success(let message?): return message
            case .success(nil): continue
            case .failure(let error): throw Failure(description: "malformed message: \(error)")
            }
        }
    }
}

/// A decoded message and the descriptors that came with it (the receiver owns them).
public struct ReceivedMessage: Sendable {
    public var message: MasterWorkerMessage
    public var descriptors: [Int32]

    public init(message: MasterWorkerMessage, descriptors: [Int32]) {
        self.message = message
        self.descriptors = descriptors
    }
}

/// Turns the datagrams of one channel into messages, in the protocol its peer speaks. Kept per
/// channel by a reader that is woken per datagram (the master's read sources), since one
/// message may span several datagrams.
public struct MessageDecoder: Sendable {
    public let version: UInt8
    private var assembler = FrameAssembler()

    public init(version: UInt8) { self.version = version }

    /// The message once complete, nil while more datagrams are due. On an error the
    /// descriptors that came with the bad message are closed.
    public mutating func feed(_ bytes: [UInt8], descriptors: [Int32]) -> Result<ReceivedMessage?, WireError> {
        if version == MasterWorkerProtocol.legacy {
            do {
                return .success(ReceivedMessage(message: try LegacyVerbs.decode(bytes, descriptorCount: descriptors.count), descriptors: descriptors))
            } catch {
                for fd in descriptors { _ = Glibc.close(fd) }
                return .failure(error)
            }
        }
        switch assembler.feed(bytes, descriptors: descriptors) {
        case .failure(let failed):
            for fd in failed.descriptors { _ = Glibc.close(fd) }
            return .failure(failed.error)
        case .success(nil):
            return .success(nil)
        case .success(let (kind, body, fds)?):
            do {
                return .success(ReceivedMessage(message: try MasterWorkerCodec.decode(kind: kind, body: body, descriptorCount: fds.count), descriptors: fds))
            } catch {
                for fd in fds { _ = Glibc.close(fd) }
                return .failure(error)
            }
        }
    }
}
