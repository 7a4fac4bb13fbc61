import NIOCore
import Shared

#if canImport(Glibc)
import Glibc
#endif

/// One connection with a remote peer, either way: the handshake, then the messages. It
/// learns the peer's updates into the tables, pushes the local changes after what the peer
/// acknowledged, teaches every entry when asked for a resync, and keeps the session alive with
/// heartbeats. A peer that breaks the protocol is told so and disconnected.
final class PeerSession: ChannelInboundHandler, @unchecked Sendable {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    enum State {
        /// We connect: waiting for the TCP connection, then for the status line.
        case connecting, awaitingStatus
        /// The peer connected: reading its three hello lines.
        case awaitingHello([String])
        case established
        case closed
    }

    /// A table the peer defined: what its updates carry, and our table for it (if any).
    struct RemoteTable {
        var definition: PeerTableDefinition
        var local: Int?
        var lastReceived: UInt32 = 0
        var lastAcknowledged: UInt32 = 0
    }

    /// A resync we answer: every entry of each table, a batch at a time.
    struct Teaching {
        var table = 0
        var slots: [Int32]? = nil
        var position = 0
        var origins: [UInt64]
    }

    let section: PeersSection
    private(set) var link: PeerLink?
    private var state: State
    private var context: ChannelHandlerContext?
    private var reader = PeerFrameReader()
    private var output: [UInt8] = []
    private let openedAt = NIODeadline.now()
    private var lastReceivedAt = NIODeadline.now()
    private var lastSentAt = NIODeadline.now()
    /// Per shared table: defined on this session, and the newest local change sent.
    private var defined: [Bool]
    private var cursors: [UInt64]
    private var remote: [UInt64: RemoteTable] = [:]
    private var current: UInt64?
    private var sentNames = PeerDictionary()
    private var receivedNames = PeerDictionary()
    private var teaching: Teaching?
    /// We taught and wait for the peer's confirmation before pushing live again.
    private var awaitingConfirmation: [UInt64]?
    /// We asked this peer for a resync and it has not finished.
    private var learning = false
    private var closedByCollision = false
    /// Closing was asked before the channel was there (a collision while connecting).
    private var closeRequested = false
    /// The table the peer applies our updates to (the last defined or switched to).
    private var lastSentTable: Int?
    /// Since when the peer has not been reading what we send.
    private var unwritableSince: NIODeadline?
    /// When we finished teaching (the peer confirms, or after a while pushing resumes).
    private var taughtAt: NIODeadline?

    /// Updates sent per table and turn; messages stay far below HAProxy's 16 kB limit.
    static let batch = 256
    /// Tables a peer may define on one session (ids beyond are an attack on memory).
    static let maxRemoteTables = 64
    static let maxTableName = 256
    /// A hello slower than this, a peer not reading for this long: the connection closes.
    static let handshakeTimeout = TimeAmount.seconds(5)
    static let writeStallLimit = TimeAmount.seconds(10)
    /// How long pushes wait for the confirmation of what we taught.
    static let confirmationTimeout = TimeAmount.seconds(10)

    init(section: PeersSection, link: PeerLink?) {
        self.section = section
        self.link = link
        state = link == nil ? .awaitingHello([]) : .connecting
        defined = Array(repeating: false, count: section.tables.count)
        cursors = link?.acknowledged ?? Array(repeating: 0, count: section.tables.count)
    }

    var isEstablished: Bool { if case .established = state { return true } else { return false } }

    // MARK: - Channel events

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
        if link == nil, !section.register(handshaking: self) { closeRequested = true }
        if closeRequested { context.close(promise: nil) }
    }

    func channelActive(context: ChannelHandlerContext) {
        if closeRequested {
            context.close(promise: nil)
            return
        }
        guard case .connecting = state, let link else { return }
        state = .awaitingStatus
        link.lastStatus = "HSHK"
        output.append(contentsOf: PeerHandshake.hello(remote: link.name, local: section.localName, pid: getpid()))
        flush()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        var buffer = unwrapInboundIn(data)
        lastReceivedAt = .now()
        reader.append(buffer.readBytes(length: buffer.readableBytes) ?? [])
        process()
        if isEstablished { pushUpdates() }
        flush()
    }

    func channelInactive(context: ChannelHandlerContext) {
        guard !isClosed else { return }
        state = .closed
        section.sessionClosed(self, collision: closedByCollision)
    }

    var isHandshaking: Bool {
        switch state {
        case .connecting, .awaitingStatus, .awaitingHello: return true
        case .established, .closed: return false
        }
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        context.close(promise: nil)
    }

    private var isClosed: Bool { if case .closed = state { return true } else { return false } }

    func connectFailed() {
        guard !isClosed else { return }
        state = .closed
        section.sessionClosed(self, collision: false)
    }

    func close(collision: Bool = false) {
        closedByCollision = collision
        closeRequested = true
        context?.close(promise: nil)
    }

    // MARK: - Reading

    private func process() {
        do {
            while true {
                switch state {
                case .awaitingStatus:
                    guard let line = try reader.line() else { return }
                    // A session replaced meanwhile (a collision) goes no further.
                    guard let link, link.session === self, !closeRequested else {
                        close()
                        return
                    }
                    guard line == "200" else {
                        link.lastStatus = Int(line).flatMap(PeerHandshake.Status.init(rawValue:))?.name ?? "NONE"
                        close()
                        return
                    }
                    established()
                case .awaitingHello(var lines):
                    guard let line = try reader.line() else { return }
                    lines.append(line)
                    let known = Set(section.links.map(\.name))
                    switch PeerHandshake.check(lines, localName: section.localName, knownPeers: known) {
                    case .failure(let error):
                        output.append(contentsOf: PeerHandshake.statusLine(error.status))
                        flush()
                        state = .closed
                        section.sessionClosed(self, collision: false)
                        close()
                        return
                    case .success(nil):
                        state = .awaitingHello(lines)
                    case .success(let name?):
                        guard !section.stopped, let link = section.adopt(self, as: name) else {
                            output.append(contentsOf: PeerHandshake.statusLine(.tryAgainLater))
                            flush()
                            state = .closed
                            section.sessionClosed(self, collision: false)
                            close()
                            return
                        }
                        self.link = link
                        cursors = link.acknowledged
                        output.append(contentsOf: PeerHandshake.statusLine(.succeeded))
                        established()
                    }
                case .established:
                    guard let frame = try reader.next() else { return }
                    try handle(frame)
                case .connecting, .closed:
                    return
                }
            }
        } catch PeerFrameReader.Failure.tooLarge(let size) {
            refuse(PeerMessageCode.sizeLimit, "message of \(size) bytes exceeds the size limit")
        } catch {
            // A hello line that never ends is dropped without a word, as HAProxy does.
            if isHandshaking {
                state = .closed
                section.sessionClosed(self, collision: false)
                close()
            } else {
                refuse(PeerMessageCode.protocolError, "protocol error")
            }
        }
    }

    private func established() {
        state = .established
        guard let link else { return }
        link.lastStatus = "ESTA"
        link.lastHandshake = .now()
        // Right away: HAProxy drops a new session it hears nothing on after a collision.
        sendHeartbeat()
    }

    private struct Malformed: Error {}

    private func handle(_ frame: PeerFrame) throws {
        switch frame.messageClass {
        case PeerMessageCode.control:
            switch frame.type {
            case PeerMessageCode.resyncRequest:
                teaching = Teaching(origins: section.tables.map { t in t.table.withStorage { $0.resyncOrigin() } })
            case PeerMessageCode.resyncFinished, PeerMessageCode.resyncPartial:
                PeerFrame.control(PeerMessageCode.resyncConfirm).encode(into: &output)
                if learning {
                    learning = false
                    section.resyncEnded(by: self, complete: frame.type == PeerMessageCode.resyncFinished)
                }
            case PeerMessageCode.resyncConfirm:
                link?.confirms += 1
                resumePushing()
            case PeerMessageCode.heartbeat:
                link?.receivedHeartbeats += 1
            default:
                break
            }
        case PeerMessageCode.stickTable:
            switch frame.type {
            case PeerMessageCode.define:
                guard let definition = PeerTableDefinition(payload: frame.payload) else { throw Malformed() }
                // A peer shares a handful of tables: more, or huge names, are an attack on memory.
                guard remote[definition.id] != nil || remote.count < Self.maxRemoteTables,
                      definition.name.utf8.count <= Self.maxTableName else { throw Malformed() }
                let local = section.tables.firstIndex { definition.matches($0.table.definition, name: $0.wireName) }
                var entry = remote[definition.id] ?? RemoteTable(definition: definition, local: local)
                entry.definition = definition
                entry.local = local
                remote[definition.id] = entry
                current = definition.id
            case PeerMessageCode.switch:
                var at = 0
                guard let id = PeerVarint.decode(frame.payload, at: &at) else { throw Malformed() }
                current = remote[id] != nil ? id : nil
            case PeerMessageCode.update, PeerMessageCode.incrementalUpdate, PeerMessageCode.timedUpdate, PeerMessageCode.timedIncrementalUpdate:
                try learn(frame)
            case PeerMessageCode.ack:
                guard let ack = PeerAck(payload: frame.payload) else { throw Malformed() }
                // Acknowledgements of what we taught mean nothing until the peer confirms.
                guard teaching == nil, awaitingConfirmation == nil, let index = section.index(ofLocalID: ack.tableID), let link else { return }
                let cursor = cursors[index]
                var sequence = (cursor & ~0xFFFF_FFFF) | UInt64(ack.updateID)
                if sequence > cursor { sequence = sequence >= 1 << 32 ? sequence - (1 << 32) : 0 }
                link.acknowledged[index] = max(link.acknowledged[index], sequence)
            default:
                break
            }
        default:
            // Error messages come before the peer closes; other classes are not ours.
            break
        }
    }

    private func learn(_ frame: PeerFrame) throws {
        guard let id = current, var entry = remote[id] else { return }
        var received: UInt32?
        if let local = entry.local {
            let shared = section.tables[local].table
            let now = shared.now
            var names = receivedNames
            defer { receivedNames = names }
            received = try shared.withStorage { (storage: inout StickTableStorage) throws(PeerUpdateCodec.Malformed) -> UInt32? in
                try PeerUpdateCodec.apply(frame.payload, type: frame.type, remote: entry.definition, to: &storage,
                                          keyType: shared.keyType, now: now, dictionary: &names)
            }
        } else if frame.type == PeerMessageCode.update || frame.type == PeerMessageCode.timedUpdate {
            guard frame.payload.count >= 4 else { throw Malformed() }
            received = frame.payload.prefix(4).reduce(0) { $0 << 8 | UInt32($1) }
        }
        entry.lastReceived = received ?? (entry.lastReceived &+ 1)
        remote[id] = entry
    }

    /// Tells the peer what went wrong, logs it, and closes.
    private func refuse(_ code: UInt8, _ reason: String) {
        link?.protocolErrors += 1
        PeerFrame(PeerMessageCode.error, code).encode(into: &output)
        flush()
        DiagnosticPrinter.shared.warning("Peers \(section.name): \(reason) from peer '\(link?.name ?? "?")', disconnected.")
        state = .closed
        section.sessionClosed(self, collision: false)
        context?.close(promise: nil)
    }

    // MARK: - Writing

    /// Called every 100 ms on the section's loop.
    func tick(now: NIODeadline) {
        switch state {
        case .established:
            if now - lastReceivedAt > PeersSection.silenceLimit {
                link?.missedHeartbeats += 1
                close()
                return
            }
            // A peer that does not read would make us buffer without end.
            if context?.channel.isWritable == false {
                let since = unwritableSince ?? now
                unwritableSince = since
                if now - since > Self.writeStallLimit {
                    close()
                    return
                }
            } else {
                unwritableSince = nil
            }
            if let taughtAt, now - taughtAt > Self.confirmationTimeout { resumePushing() }
            pushUpdates()
            if now - lastSentAt >= PeersSection.heartbeatInterval { sendHeartbeat() }
            flush()
        case .awaitingStatus, .awaitingHello:
            if now - openedAt > Self.handshakeTimeout { close() }
        case .connecting, .closed:
            break
        }
    }

    var nextHeartbeat: NIODeadline? { isEstablished ? lastSentAt + PeersSection.heartbeatInterval : nil }

    func requestResync() {
        learning = true
        PeerFrame.control(PeerMessageCode.resyncRequest).encode(into: &output)
        flush()
    }

    private func sendHeartbeat() {
        link?.sentHeartbeats += 1
        PeerFrame.control(PeerMessageCode.heartbeat).encode(into: &output)
    }

    /// Acknowledgements, then a batch of what we teach or of the local changes.
    private func pushUpdates() {
        for (id, var entry) in remote where entry.lastReceived != entry.lastAcknowledged {
            PeerAck(tableID: id, updateID: entry.lastReceived).frame.encode(into: &output)
            entry.lastAcknowledged = entry.lastReceived
            remote[id] = entry
        }
        // Batches go out while the connection takes them (a resync of a large table moves at
        // the peer's pace, not one batch per tick).
        for _ in 0..<Self.rounds {
            guard context?.channel.isWritable ?? false else { return }
            let before = output.count
            if teaching != nil {
                teach()
            } else if awaitingConfirmation == nil {
                pushLocalChanges()
            }
            guard output.count > before else { return }
            flush()
        }
    }

    /// Batches written per call at most before other work on the loop gets a turn.
    static let rounds = 64

    private func pushLocalChanges() {
        for (index, shared) in section.tables.enumerated() {
            let table = shared.table
            let now = table.now
            let keyType = table.keyType
            var names = sentNames
            var bytes: [UInt8] = []
            let cursor = cursors[index]
            let sent = table.withStorage { storage -> UInt64 in
                var newest = cursor
                for change in storage.localChanges(after: cursor, limit: Self.batch) {
                    PeerUpdateCodec.encode(storage, slot: change.slot, keyType: keyType, id: UInt32(truncatingIfNeeded: change.sequence),
                                           incremental: false, timed: false, now: now, dictionary: &names, into: &bytes)
                    newest = change.sequence
                }
                return newest
            }
            sentNames = names
            guard !bytes.isEmpty else { continue }
            select(index)
            output.append(contentsOf: bytes)
            cursors[index] = sent
        }
    }

    /// Taught entries were confirmed (or the confirmation is late): live pushes go on after
    /// what was taught.
    private func resumePushing() {
        taughtAt = nil
        guard let origins = awaitingConfirmation else { return }
        awaitingConfirmation = nil
        for i in cursors.indices { cursors[i] = max(cursors[i], origins[i]) }
    }

    /// Makes table `index` the one the peer applies the next updates to: its definition the
    /// first time on this session, a switch to its id after other tables' updates.
    private func select(_ index: Int) {
        defer { lastSentTable = index }
        let shared = section.tables[index]
        if !defined[index] {
            defined[index] = true
            PeerFrame(PeerMessageCode.stickTable, PeerMessageCode.define,
                      PeerTableDefinition(shared.table.definition, id: shared.id, name: shared.wireName).payload).encode(into: &output)
        } else if lastSentTable != index {
            var payload: [UInt8] = []
            PeerVarint.encode(shared.id, into: &payload)
            PeerFrame(PeerMessageCode.stickTable, PeerMessageCode.switch, payload).encode(into: &output)
        }
    }

    /// One batch of a resync: every table is defined, then its entries follow with the time
    /// they have left; the end says whether our tables are complete.
    private func teach() {
        guard var teaching else { return }
        var budget = Self.batch
        while budget > 0, teaching.table < section.tables.count {
            let shared = section.tables[teaching.table]
            let table = shared.table
            if teaching.slots == nil {
                teaching.slots = table.withStorage { $0.slots() }
                teaching.position = 0
                // Every table is defined again, even empty (HAProxy does so).
                defined[teaching.table] = false
            }
            select(teaching.table)
            let slots = teaching.slots!
            let end = min(slots.count, teaching.position + budget)
            let chunk = slots[teaching.position..<end]
            let now = table.now
            let keyType = table.keyType
            let id = UInt32(truncatingIfNeeded: teaching.origins[teaching.table])
            var names = sentNames
            var bytes: [UInt8] = []
            table.withStorage { storage in
                for slot in chunk where storage.isLive(slot) {
                    PeerUpdateCodec.encode(storage, slot: slot, keyType: keyType, id: id, incremental: false, timed: true,
                                           now: now, dictionary: &names, into: &bytes)
                }
            }
            sentNames = names
            output.append(contentsOf: bytes)
            budget -= chunk.count
            teaching.position = end
            if end == slots.count {
                teaching.table += 1
                teaching.slots = nil
            }
        }
        if teaching.table >= section.tables.count {
            PeerFrame.control(section.synchronised ? PeerMessageCode.resyncFinished : PeerMessageCode.resyncPartial).encode(into: &output)
            awaitingConfirmation = teaching.origins
            taughtAt = .now()
            self.teaching = nil
        } else {
            self.teaching = teaching
        }
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        guard isEstablished, context.channel.isWritable else { return }
        pushUpdates()
        flush()
    }

    private func flush() {
        guard !output.isEmpty, let context else { return }
        lastSentAt = .now()
        var buffer = context.channel.allocator.buffer(capacity: output.count)
        buffer.writeBytes(output)
        output.removeAll(keepingCapacity: true)
        context.writeAndFlush(NIOAny(buffer), promise: nil)
    }

    // MARK: - show peers

    var flags: Int {
        var f = 0
        if teaching != nil { f |= 0x1 }
        if awaitingConfirmation != nil { f |= 0x8 }
        if learning { f |= 0x100 }
        if isEstablished { f |= 0x2000_0000 }
        return f
    }

    var channelDescription: String {
        guard let channel = context?.channel else { return "" }
        let local = channel.localAddress.map { "\($0.ipAddress ?? "?"):\($0.port ?? 0)" } ?? "-"
        let remoteAddress = channel.remoteAddress.map { "\($0.ipAddress ?? "?"):\($0.port ?? 0)" } ?? "-"
        return " appctx:\(PeersSection.pointer(self)) st0=\(isEstablished ? 7 : 1) st1=0 task_calls=0 state=EST\n        xprt=RAW src=\(remoteAddress) addr=\(local)"
    }

    func pushCursor(_ index: Int) -> UInt64 { cursors[index] }
    func remoteID(of index: Int) -> UInt64 { remote.first { $0.value.local == index }?.key ?? 0 }
    func remoteData(of index: Int) -> UInt64 { remote.first { $0.value.local == index }?.value.definition.dataTypes ?? 0 }
    func lastReceived(of index: Int) -> UInt32 { remote.first { $0.value.local == index }?.value.lastReceived ?? 0 }
}
