import Shared

#if canImport(Glibc)
import Glibc
#endif

/// What the master CLI reads about the processes, published by the supervisor after each
/// change so that `show proc` answers from the CLI threads without going through its queue.
/// The lock also guards the worker channels: a CLI thread sends on a channel only while the
/// supervisor cannot close it (and the descriptor number cannot be reused under it).
final class ProcessTable: @unchecked Sendable {
    struct Snapshot {
        var masterPid: Int32 = getpid()
        var masterStartedAt = Int(time(nil))
        var reloads = 0
        var failedReloads = 0
        var lastReloadFailed = false
        /// `Success`, `Failed` or empty before the first reload.
        var lastReloadStatus = ""
        var lastReloadDurationMs = 0
        var lastReloadTime = 0
        var loading = false
        /// `stats timeout` of the loaded configuration (10 s until one is loaded).
        var cliTimeoutMs = 10_000
        var workers: [WorkerRecord] = []
    }

    private var mutex = pthread_mutex_t()
    private var snapshot = Snapshot()

    init() { pthread_mutex_init(&mutex, nil) }

    func publish(_ update: (inout Snapshot) -> Void) {
        pthread_mutex_lock(&mutex)
        update(&snapshot)
        pthread_mutex_unlock(&mutex)
    }

    func read() -> Snapshot {
        pthread_mutex_lock(&mutex)
        defer { pthread_mutex_unlock(&mutex) }
        return snapshot
    }

    /// Runs `body` with the channel of worker `pid` while it cannot be closed; nil if there is
    /// no such worker or its channel is gone.
    func withChannel<T>(of pid: Int32, _ body: (WorkerChannel) -> T) -> T? {
        pthread_mutex_lock(&mutex)
        defer { pthread_mutex_unlock(&mutex) }
        guard let channel = snapshot.workers.first(where: { $0.pid == pid })?.channel else { return nil }
        return body(channel)
    }

    /// Closes a worker channel under the lock and forgets it.
    func closeChannel(_ fd: Int32) {
        pthread_mutex_lock(&mutex)
        close(fd)
        for i in snapshot.workers.indices where snapshot.workers[i].ipcFD == fd { snapshot.workers[i].ipcFD = -1 }
        pthread_mutex_unlock(&mutex)
    }
}
