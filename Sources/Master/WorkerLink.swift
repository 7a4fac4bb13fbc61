import Dispatch
import Shared

#if canImport(Glibc)
import Glibc
#endif

/// The master's end of one worker's channel. It is read on the supervisor's queue, one datagram
/// per read event, into messages; it is written on its own serial queue (the outbox), so a
/// worker that does not read delays only its own messages, never the supervisor. Every send
/// is also bounded by `SO_SNDTIMEO`: a stuck worker costs its outbox at most that long per
/// message, and a send that fails is reported.
final class WorkerLink: @unchecked Sendable {
    static let sendTimeoutSeconds = 10

    let pid: pid_t
    let channel: WorkerChannel
    private let source: DispatchSourceRead
    private let outbox: DispatchQueue
    private var decoder: MessageDecoder
    private var stopped = false

    /// `deliver` is called on `queue` with each event the channel produces.
    init(pid: pid_t, fd: Int32, version: UInt8, queue: DispatchQueue, table: ProcessTable,
         deliver: @escaping @Sendable (MasterMachine.Event) -> Void) {
        self.pid = pid
        channel = WorkerChannel(fd: fd, version: version)
        decoder = MessageDecoder(version: version)
        outbox = DispatchQueue(label: "hasp.master.outbox.\(pid)")
        source = DispatchSource.makeReadSource(fileDescriptor: fd, queue: queue)
        var timeout = timeval(tv_sec: Self.sendTimeoutSeconds, tv_usec: 0)
        _ = setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        let outbox = self.outbox
        source.setEventHandler { [unowned self] in
            guard let event = readOne() else { return }
            deliver(event)
        }
        // The number stays valid until every send queued before the close is done; the table
        // forgets it under its lock, so no CLI thread sends on a reused number.
        source.setCancelHandler { outbox.async { table.closeChannel(fd) } }
        source.resume()
    }

    /// One datagram: a whole message, EOF, or nothing yet (a fragment, or a spurious wake-up).
    private func readOne() -> MasterMachine.Event? {
        let datagram: (bytes: [UInt8], descriptors: [Int32])?
        do {
            datagram = try channel.channel.receive(timeoutMs: 0)
        } catch {
            return nil
        }
        guard let datagram else {
            stop()
            return .channelClosed(pid: pid)
        }
        switch decoder.feed(datagram.bytes, descriptors: datagram.descriptors) {
        case .success(let received?):
            return .message(from: pid, received)
        case .success(nil):
            return nil
        case .failure(let error):
            DiagnosticPrinter.shared.warning("master: malformed message from worker \(pid): \(error)")
            return nil
        }
    }

    /// Stops reading. With `draining`, messages still queued are delivered first: a worker's
    /// last hand-overs can still be there when its exit is reaped, and closing the channel
    /// unread would close those connections.
    func stop(draining deliver: ((MasterMachine.Event) -> Void)? = nil) {
        guard !stopped else { return }
        stopped = true
        if let deliver {
            var guardCount = 0
            while guardCount < 100_000, let event = readQueued() {
                if let event { deliver(event) }
                guardCount += 1
            }
        }
        source.cancel()
    }

    /// A queued datagram's event (nil inside: a fragment), or nil once nothing is queued.
    private func readQueued() -> MasterMachine.Event?? {
        guard let datagram = try? channel.channel.receive(timeoutMs: 0) else { return nil }
        switch decoder.feed(datagram.bytes, descriptors: datagram.descriptors) {
        case .success(let received?): return .some(.message(from: pid, received))
        default: return .some(nil)
        }
    }

    /// Sends in order on the outbox. `closing` descriptors are the master's to give away: they
    /// are closed once sent, or once the send failed. A failure is reported through `failed`.
    func send(_ message: MasterWorkerMessage, descriptors: [Int32], closing: Bool, failed: @escaping @Sendable () -> Void) {
        let channel = self.channel
        outbox.async {
            let ok = (try? channel.send(message, descriptors: descriptors)) != nil
            if closing { for fd in descriptors { close(fd) } }
            if !ok { failed() }
        }
    }

    /// Waits until everything queued so far is sent (before an exec, which would drop it).
    func flush() { outbox.sync {} }
}
