/// Everything the master and its workers say to each other on their socketpair, one case per
/// verb. Descriptors are not part of the value: they travel beside it (`SCM_RIGHTS`), and
/// `descriptorCount` says how many each message must carry.
public enum MasterWorkerMessage: Equatable, Sendable {
    /// Master → new worker: the configuration sources the master validated.
    case config([ConfigParser.Source])
    /// Master → new worker: the previous worker's runtime changes (possibly none). Also
    /// worker → master, answering `runtimeStateRequest`.
    case runtimeState(RuntimeStateRecord)
    /// Master → current worker: report your runtime changes (a reload is starting).
    case runtimeStateRequest
    /// Master → new worker: this many listeners follow, in batches.
    case listeners(count: Int)
    /// Master → new worker: one batch, one descriptor per listener, in order.
    case listenerBatch([ListenerDescription])
    /// Worker → master: a batch of `count` listeners was received.
    case ack(count: Int)
    /// Master → new worker: the hand-off is complete.
    case go
    /// Worker → master: the worker serves.
    case ready(pid: Int32)
    /// Draining worker → master: an idle client connection (one descriptor).
    case handover(frontend: String)
    /// Master → current worker: serve this connection (one descriptor).
    case adopt(frontend: String)
    /// Master → worker: one end of a runtime-API session at level admin (one descriptor).
    case cli
    /// Master → worker: soft-stop. Handled, but the master signals SIGUSR1 instead.
    case stop
    /// Master → new worker, right after `config` when the configuration names TLS files: their
    /// contents as the master read them (the worker may not be able to read them itself).
    case files(ConfigFiles.Bundle)

    /// A listener without its descriptor.
    public struct ListenerDescription: Equatable, Sendable {
        public var frontend: String
        public var address: String
        public var backlog: Int32

        public init(frontend: String, address: String, backlog: Int32) {
            self.frontend = frontend
            self.address = address
            self.backlog = backlog
        }
    }

    public var descriptorCount: Int {
        switch self {
        case .listenerBatch(let batch): batch.count
        case .handover, .adopt, .cli: 1
        default: 0
        }
    }

    /// The verb, for messages and logs.
    public var verb: String {
        switch self {
        case .config: "CONFIG"
        case .runtimeState: "STATE"
        case .runtimeStateRequest: "STATE?"
        case .listeners: "LISTENERS"
        case .listenerBatch: "LISTENER-BATCH"
        case .ack: "ACK"
        case .go: "GO"
        case .ready: "READY"
        case .handover: "HANDOVER"
        case .adopt: "ADOPT"
        case .cli: "CLI"
        case .stop: "STOP"
        case .files: "FILES"
        }
    }
}

extension ConfigParser.Source: Equatable {
    public static func == (a: Self, b: Self) -> Bool {
        a.name == b.name && a.text == b.text && a.mustEndWithLineFeed == b.mustEndWithLineFeed
    }
}

/// Protocol 1: each message is a frame kind and a body of `WireWriter` fields.
public enum MasterWorkerCodec {
    enum Kind: UInt8 {
        case config = 1, runtimeState, runtimeStateRequest, listeners, listenerBatch, ack, go, ready
        case handover, adopt, cli, stop, files
    }

    static func kind(of message: MasterWorkerMessage) -> Kind {
        switch message {
        case .config: .config
        case .runtimeState: .runtimeState
        case .runtimeStateRequest: .runtimeStateRequest
        case .listeners: .listeners
        case .listenerBatch: .listenerBatch
        case .ack: .ack
        case .go: .go
        case .ready: .ready
        case .handover: .handover
        case .adopt: .adopt
        case .cli: .cli
        case .stop: .stop
        case .files: .files
        }
    }

    /// The datagrams to send, in order (more than one only for a message over `maxBytes`).
    public static func encode(_ message: MasterWorkerMessage, maxBytes: Int = IPCChannel.maxMessage) -> [[UInt8]] {
        Frame.split(kind: kind(of: message).rawValue, body: body(of: message), maxBytes: maxBytes).map(\.bytes)
    }

    static func body(of message: MasterWorkerMessage) -> [UInt8] {
        var w = WireWriter()
        switch message {
        case .config(let sources):
            w.array(sources) { w, s in
                w.string(s.name)
                w.string(s.text)
                w.bool(s.mustEndWithLineFeed)
            }
        case .runtimeState(let record):
            record.encode(into: &w)
        case .listeners(let count), .ack(let count):
            w.int(count)
        case .listenerBatch(let batch):
            w.array(batch) { w, l in
                w.string(l.frontend)
                w.string(l.address)
                w.i32(l.backlog)
            }
        case .ready(let pid):
            w.i32(pid)
        case .handover(let frontend), .adopt(let frontend):
            w.string(frontend)
        case .files(let bundle):
            w.array(bundle.files.sorted { $0.key < $1.key }) { w, entry in
                w.string(entry.key)
                w.data(entry.value)
            }
            w.array(bundle.directories.sorted { $0.key < $1.key }) { w, entry in
                w.string(entry.key)
                w.array(entry.value) { w, name in w.string(name) }
            }
        case .runtimeStateRequest, .go, .cli, .stop:
            break
        }
        return w.bytes
    }

    /// Decodes an assembled body; the descriptors that came with it must be as many as the
    /// message carries.
    public static func decode(kind rawKind: UInt8, body: [UInt8], descriptorCount: Int) throws(WireError) -> MasterWorkerMessage {
        guard let kind = Kind(rawValue: rawKind) else { throw .unknownKind(rawKind) }
        var r = WireReader(body)
        let message: MasterWorkerMessage
        switch kind {
        case .config:
            message = .config(try r.array { (r: inout WireReader) throws(WireError) in
                ConfigParser.Source(name: try r.string(), text: try r.string(), mustEndWithLineFeed: try r.bool())
            })
        case .runtimeState:
            message = .runtimeState(try RuntimeStateRecord(from: &r))
        case .runtimeStateRequest:
            message = .runtimeStateRequest
        case .listeners:
            message = .listeners(count: try nonNegative(r.int()))
        case .listenerBatch:
            message = .listenerBatch(try r.array { (r: inout WireReader) throws(WireError) in
                MasterWorkerMessage.ListenerDescription(frontend: try r.string(), address: try r.string(), backlog: try r.i32())
            })
        case .ack:
            message = .ack(count: try nonNegative(r.int()))
        case .go:
            message = .go
        case .ready:
            message = .ready(pid: try r.i32())
        case .handover:
            message = .handover(frontend: try r.string())
        case .adopt:
            message = .adopt(frontend: try r.string())
        case .cli:
            message = .cli
        case .stop:
            message = .stop
        case .files:
            var bundle = ConfigFiles.Bundle()
            for (path, bytes) in try r.array({ (r: inout WireReader) throws(WireError) in (try r.string(), try r.data()) }) {
                bundle.files[path] = bytes
            }
            let directories = try r.array { (r: inout WireReader) throws(WireError) in
                (try r.string(), try r.array { (r: inout WireReader) throws(WireError) in try r.string() })
            }
            for (path, names) in directories { bundle.directories[path] = names }
            message = .files(bundle)
        }
        try r.expectEnd()
        guard message.descriptorCount == descriptorCount else {
            throw .invalid("\(message.verb) with \(descriptorCount) descriptor(s)")
        }
        return message
    }

    private static func nonNegative(_ value: Int) throws(WireError) -> Int {
        guard value >= 0 else { throw .invalid("count") }
        return value
    }
}
