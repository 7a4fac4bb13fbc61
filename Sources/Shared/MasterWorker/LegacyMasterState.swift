#if canImport(Glibc)
import Glibc
#endif

/// The master state as Hasp 0.1.0 wrote it across its re-exec: one tab-separated line per
/// field, listener, worker and master CLI listener, the runtime state hex-encoded. A reload
/// into a newer binary starts by reading it, so the reader stays as long as such binaries can
/// be upgraded from. Lines it does not know are skipped, as that binary did.
public enum LegacyMasterState {
    public static func parse(_ bytes: [UInt8]) throws(WireError) -> MasterState {
        guard let text = String(validating: bytes, as: UTF8.self) else { throw .invalid("UTF-8 text") }
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
            case "runtime" where f.count == 2: state.runtimeState = RuntimeStateRecord(legacyText: unhex(f[1]))
            case "mcli" where f.count == 3:
                guard let fd = Int32(f[1]) else { throw .invalid("mcli line") }
                state.cliListeners.append(MasterCLIListener(fd: fd, spec: f[2]))
            case "listener" where f.count == 6:
                guard let fd = Int32(f[2]), let backlog = Int32(f[5]) else { throw .invalid("listener line") }
                state.listeners.append(OwnedListener(key: f[1], fd: fd, frontend: f[3], address: f[4], backlog: backlog))
            case "worker" where f.count == 6 || f.count == 7:
                guard let pid = pid_t(f[1]), let ipc = Int32(f[2]), ipc >= -1, let reloads = Int(f[3]), let started = Int(f[4]) else {
                    throw .invalid("worker line")
                }
                // Workers of that binary speak the text verbs.
                var record = WorkerRecord(pid: pid, ipcFD: ipc, reloads: reloads, startedAt: started, leaving: f[5] == "1",
                                          protocolVersion: MasterWorkerProtocol.legacy)
                if f.count == 7 { record.version = f[6] }
                state.workers.append(record)
            default:
                continue
            }
        }
        guard !state.binaryPath.isEmpty else { throw .invalid("state: no binary path") }
        return state
    }

    /// Lower-case hex pairs to text; an odd last digit is ignored, as it was.
    static func unhex(_ text: String) -> String {
        func value(_ c: UInt8) -> UInt8 { c >= 97 ? c &- 87 : c &- 48 }
        let chars = Array(text.utf8)
        var out: [UInt8] = []
        var i = 0
        while i + 1 < chars.count {
            out.append(value(chars[i]) << 4 | value(chars[i + 1]) & 15)
            i += 2
        }
        return String(decoding: out, as: UTF8.self)
    }
}
