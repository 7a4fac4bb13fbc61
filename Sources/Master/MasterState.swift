import Shared

#if canImport(Glibc)
import Glibc
#endif

/// A worker process as the master tracks it.
struct WorkerRecord {
    var pid: pid_t
    /// The master's end of the worker's socketpair.
    var ipcFD: Int32
    /// Reloads this worker has lived through (0 for the current one).
    var reloads: Int
    var startedAt: Int
    /// True once a newer worker took over: it is draining.
    var leaving: Bool
    /// The version of the binary it runs (`show proc`).
    var version = HaspVersion.version
}

/// A listening socket the master owns, keyed by what identifies it across reloads.
struct OwnedListener {
    var key: String
    var fd: Int32
    var frontend: String
    var address: String
    var backlog: Int32
}

/// What survives the master's re-exec, written to an inherited memfd.
struct MasterState {
    var binaryPath: String
    var reloads = 0
    var failedReloads = 0
    var listeners: [OwnedListener] = []
    var workers: [WorkerRecord] = []
    /// Master CLI listeners (`-S`), bound once and kept across re-executions.
    var cliListeners: [MasterCLI.Listener] = []
    var masterStartedAt = Int(time(nil))
    var lastReloadFailed = false
    var lastReloadStatus = ""
    var lastReloadDurationMs = 0
    var lastReloadTime = 0
    /// Set across the exec of a reload: the master CLI client waiting for its answer, whether
    /// old workers get SIGTERM (`hard-reload`), and when the reload began (wall-clock ms).
    var reloadClientFD: Int32 = -1
    var hardReload = false
    var reloadStartedMs = 0
    /// The current worker's runtime changes (`_runtime_state`), for the next worker.
    var runtimeState = ""

    static let variable = "HASP_MASTER_STATE_FD"

    func serialize() -> String {
        var lines = ["binary\t\(binaryPath)", "reloads\t\(reloads)", "failed\t\(failedReloads)",
                     "started\t\(masterStartedAt)", "lastfailed\t\(lastReloadFailed ? 1 : 0)",
                     "laststatus\t\(lastReloadStatus)", "lastduration\t\(lastReloadDurationMs)", "lasttime\t\(lastReloadTime)",
                     "reloadclient\t\(reloadClientFD)", "hard\t\(hardReload ? 1 : 0)", "reloadstart\t\(reloadStartedMs)",
                     "runtime\t\(Self.hex(runtimeState))"]
        for l in listeners { lines.append("listener\t\(l.key)\t\(l.fd)\t\(l.frontend)\t\(l.address)\t\(l.backlog)") }
        for w in workers { lines.append("worker\t\(w.pid)\t\(w.ipcFD)\t\(w.reloads)\t\(w.startedAt)\t\(w.leaving ? 1 : 0)\t\(w.version)") }
        for c in cliListeners { lines.append("mcli\t\(c.fd)\t\(c.spec)") }
        return lines.joined(separator: "\n") + "\n"
    }

    static func hex(_ text: String) -> String {
        let digits = Array("0123456789abcdef".utf8)
        var out: [UInt8] = []
        for b in text.utf8 { out.append(digits[Int(b >> 4)]); out.append(digits[Int(b & 15)]) }
        return String(decoding: out, as: UTF8.self)
    }

    static func unhex(_ text: String) -> String {
        func value(_ c: UInt8) -> UInt8 { c >= 97 ? c - 87 : c - 48 }
        let chars = Array(text.utf8)
        var out: [UInt8] = []
        var i = 0
        while i + 1 < chars.count {
            out.append(value(chars[i]) << 4 | value(chars[i + 1]))
            i += 2
        }
        return String(decoding: out, as: UTF8.self)
    }

    static func parse(_ text: String) -> MasterState? {
        var state = MasterState(binaryPath: "")
        for line in text.split(separator: "\n") {
            let f = line.split(separator: "\t", omittingEmptySubsequences: false).map(String.init)
            switch f.first {
            case "binary" where f.count == 2: state.binaryPath = f[1]
            case "reloads" where f.count == 2: state.reloads = Int(f[1]) ?? 0
            case "failed" where f.count == 2: state.failedReloads = Int(f[1]) ?? 0
            case "started" where f.count == 2: state.masterStartedAt = Int(f[1]) ?? state.masterStartedAt
            case "lastfailed" where f.count == 2: state.lastReloadFailed = f[1] == "1"
            case "laststatus" where f.count == 2: state.lastReloadStatus = f[1]
            case "lastduration" where f.count == 2: state.lastReloadDurationMs = Int(f[1]) ?? 0
            case "lasttime" where f.count == 2: state.lastReloadTime = Int(f[1]) ?? 0
            case "reloadclient" where f.count == 2: state.reloadClientFD = Int32(f[1]) ?? -1
            case "hard" where f.count == 2: state.hardReload = f[1] == "1"
            case "reloadstart" where f.count == 2: state.reloadStartedMs = Int(f[1]) ?? 0
            case "runtime" where f.count == 2: state.runtimeState = unhex(f[1])
            case "mcli" where f.count == 3:
                guard let fd = Int32(f[1]) else { return nil }
                state.cliListeners.append(MasterCLI.Listener(fd: fd, spec: f[2]))
            case "listener" where f.count == 6:
                guard let fd = Int32(f[2]), let backlog = Int32(f[5]) else { return nil }
                state.listeners.append(OwnedListener(key: f[1], fd: fd, frontend: f[3], address: f[4], backlog: backlog))
            case "worker" where f.count == 6 || f.count == 7:
                guard let pid = pid_t(f[1]), let ipc = Int32(f[2]), ipc >= -1, let reloads = Int(f[3]), let started = Int(f[4]) else { return nil }
                var record = WorkerRecord(pid: pid, ipcFD: ipc, reloads: reloads, startedAt: started, leaving: f[5] == "1")
                if f.count == 7 { record.version = f[6] }
                state.workers.append(record)
            default:
                // A newer or older image may know more: skip what this one does not.
                continue
            }
        }
        return state.binaryPath.isEmpty ? nil : state
    }
}
