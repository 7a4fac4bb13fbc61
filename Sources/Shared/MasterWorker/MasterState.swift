#if canImport(Glibc)
import Glibc
#endif

/// A worker process as the master tracks it.
public struct WorkerRecord: Equatable, Sendable {
    public var pid: pid_t
    /// The master's end of the worker's socketpair (-1 once it is closed).
    public var ipcFD: Int32
    /// Reloads this worker has lived through (0 for the current one).
    public var reloads: Int
    public var startedAt: Int
    /// True once a newer worker took over: it is draining.
    public var leaving: Bool
    /// The version of the binary it runs (`show proc`).
    public var version: String
    /// The master-worker protocol it speaks (`MasterWorkerProtocol`).
    public var protocolVersion: UInt8

    public init(pid: pid_t, ipcFD: Int32, reloads: Int, startedAt: Int, leaving: Bool,
                version: String = HaspVersion.version, protocolVersion: UInt8 = MasterWorkerProtocol.current) {
        self.pid = pid
        self.ipcFD = ipcFD
        self.reloads = reloads
        self.startedAt = startedAt
        self.leaving = leaving
        self.version = version
        self.protocolVersion = protocolVersion
    }

    /// Its channel, speaking its protocol.
    public var channel: WorkerChannel? { ipcFD >= 0 ? WorkerChannel(fd: ipcFD, version: protocolVersion) : nil }
}

/// A worker's channel and the protocol to speak on it.
public struct WorkerChannel: Sendable {
    public var channel: IPCChannel
    public var version: UInt8

    public init(fd: Int32, version: UInt8) {
        channel = IPCChannel(fd: fd)
        self.version = version
    }

    public func send(_ message: MasterWorkerMessage, descriptors: [Int32] = [], waiting: Bool = true) throws(IPCChannel.Failure) {
        try channel.send(message, descriptors: descriptors, version: version, waiting: waiting)
    }
}

/// A listening socket the master owns, keyed by what identifies it across reloads
/// (`"<address>#<unix mode or ->"`, or `stats#<address>`).
public struct OwnedListener: Equatable, Sendable {
    public var key: String
    public var fd: Int32
    public var frontend: String
    public var address: String
    public var backlog: Int32

    public init(key: String, fd: Int32, frontend: String, address: String, backlog: Int32) {
        self.key = key
        self.fd = fd
        self.frontend = frontend
        self.address = address
        self.backlog = backlog
    }
}

/// A master CLI listener (`-S`): its socket and the specification it was bound from.
public struct MasterCLIListener: Equatable, Sendable {
    public var fd: Int32
    public var spec: String

    public init(fd: Int32, spec: String) {
        self.fd = fd
        self.spec = spec
    }
}

/// What survives the master's re-exec, written to an inherited memfd.
public struct MasterState: Equatable, Sendable {
    public var binaryPath: String
    public var reloads = 0
    public var failedReloads = 0
    public var listeners: [OwnedListener] = []
    public var workers: [WorkerRecord] = []
    /// Master CLI listeners (`-S`), bound once and kept across re-executions.
    public var cliListeners: [MasterCLIListener] = []
    public var masterStartedAt = Int(time(nil))
    public var lastReloadFailed = false
    public var lastReloadStatus = ""
    public var lastReloadDurationMs = 0
    public var lastReloadTime = 0
    /// Set across the exec of a reload: the master CLI client waiting for its answer, whether
    /// old workers get SIGTERM (`hard-reload`), and when the reload began (wall-clock ms).
    public var reloadClientFD: Int32 = -1
    public var hardReload = false
    public var reloadStartedMs = 0
    /// The current worker's runtime changes, for the next worker.
    public var runtimeState = RuntimeStateRecord()

    public static let variable = "HASP_MASTER_STATE_FD"
    /// The frame kind of an encoded state (outside the message kinds).
    static let frameKind: UInt8 = 0x40

    public init(binaryPath: String) { self.binaryPath = binaryPath }

    /// Every descriptor the state names, for the exec (they must survive it) and after it.
    public var descriptors: [Int32] {
        listeners.map(\.fd) + workers.compactMap { $0.ipcFD >= 0 ? $0.ipcFD : nil } + cliListeners.map(\.fd)
            + (reloadClientFD >= 0 ? [reloadClientFD] : [])
    }

    // MARK: - Encoding

    /// One `Frame` of kind `frameKind`, in the current protocol.
    public func encoded() -> [UInt8] {
        var w = WireWriter()
        w.string(binaryPath)
        w.int(reloads)
        w.int(failedReloads)
        w.int(masterStartedAt)
        w.bool(lastReloadFailed)
        w.string(lastReloadStatus)
        w.int(lastReloadDurationMs)
        w.int(lastReloadTime)
        w.i32(reloadClientFD)
        w.bool(hardReload)
        w.int(reloadStartedMs)
        runtimeState.encode(into: &w)
        w.array(listeners) { w, l in
            w.string(l.key)
            w.i32(l.fd)
            w.string(l.frontend)
            w.string(l.address)
            w.i32(l.backlog)
        }
        w.array(workers) { w, r in
            w.i32(r.pid)
            w.i32(r.ipcFD)
            w.int(r.reloads)
            w.int(r.startedAt)
            w.bool(r.leaving)
            w.string(r.version)
            w.u8(r.protocolVersion)
        }
        w.array(cliListeners) { w, c in
            w.i32(c.fd)
            w.string(c.spec)
        }
        return Frame(kind: Self.frameKind, body: w.bytes).bytes
    }

    /// Reads a state written by this binary or, in the old text form, by a protocol-0 binary
    /// (whose workers are then recorded as speaking protocol 0).
    public static func decode(_ bytes: [UInt8]) throws(WireError) -> MasterState {
        guard Frame.isFrame(bytes) else { return try LegacyMasterState.parse(bytes) }
        let frame = try Frame.parse(bytes)
        guard frame.kind == frameKind, !frame.more else { throw .unknownKind(frame.kind) }
        var r = WireReader(frame.body)
        var s = MasterState(binaryPath: try r.string())
        guard !s.binaryPath.isEmpty else { throw .invalid("binary path") }
        s.reloads = try r.int()
        s.failedReloads = try r.int()
        s.masterStartedAt = try r.int()
        s.lastReloadFailed = try r.bool()
        s.lastReloadStatus = try r.string()
        s.lastReloadDurationMs = try r.int()
        s.lastReloadTime = try r.int()
        s.reloadClientFD = try descriptor(r.i32())
        s.hardReload = try r.bool()
        s.reloadStartedMs = try r.int()
        s.runtimeState = try RuntimeStateRecord(from: &r)
        s.listeners = try r.array { (r: inout WireReader) throws(WireError) in
            OwnedListener(key: try r.string(), fd: try openDescriptor(r.i32()), frontend: try r.string(),
                          address: try r.string(), backlog: try r.i32())
        }
        s.workers = try r.array { (r: inout WireReader) throws(WireError) in
            let pid = try r.i32()
            guard pid > 0 else { throw .invalid("worker pid") }
            return WorkerRecord(pid: pid, ipcFD: try descriptor(r.i32()), reloads: try r.int(), startedAt: try r.int(),
                                leaving: try r.bool(), version: try r.string(), protocolVersion: try r.u8())
        }
        s.cliListeners = try r.array { (r: inout WireReader) throws(WireError) in
            MasterCLIListener(fd: try openDescriptor(r.i32()), spec: try r.string())
        }
        try r.expectEnd()
        return s
    }

    /// A descriptor number or -1 for none.
    static func descriptor(_ fd: Int32) throws(WireError) -> Int32 {
        guard fd >= -1 else { throw .invalid("descriptor") }
        return fd
    }

    static func openDescriptor(_ fd: Int32) throws(WireError) -> Int32 {
        guard fd >= 0 else { throw .invalid("descriptor") }
        return fd
    }
}
