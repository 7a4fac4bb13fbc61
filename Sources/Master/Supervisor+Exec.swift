import CHaspSys
import Dispatch
import Shared
import Worker

#if canImport(Glibc)
import Glibc
#endif

/// What crosses the master's re-exec: the state in a memfd, and the descriptors it names.
extension Supervisor {
    enum InheritedState {
        case none
        case state(MasterState)
        /// The previous image left a state this one cannot read.
        case unreadable(String)
    }

    static func readState(_ fd: Int32) -> InheritedState {
        lseek(fd, 0, SEEK_SET)
        var bytes: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = read(fd, &buffer, buffer.count)
            if n <= 0 { break }
            bytes.append(contentsOf: buffer[0..<n])
        }
        close(fd)
        let state: MasterState
        do {
            state = try MasterState.decode(bytes)
        } catch {
            return .unreadable("\(error)")
        }
        // Inherited descriptors become close-on-exec again: only workers get them, by message.
        for fd in state.descriptors { _ = hasp_set_cloexec(fd, 1) }
        return .state(state)
    }

    /// Binds the `-S` listeners on a first start (a re-executed image inherits them) and serves
    /// them from now on, so that `show proc` works while a worker loads.
    func startCLI(isReload: Bool) {
        if machine.state.cliListeners.isEmpty, !options.masterSockets.isEmpty {
            do {
                let listeners = try MasterCLI.bind(options.masterSockets)
                queue.sync { machine.adoptCLIListeners(listeners) }
            } catch {
                printer.alert("\(error)")
                exit(1)
            }
        }
        publish()
        guard !machine.state.cliListeners.isEmpty else { return }
        let made = MasterCLI(supervisor: self, table: table, listeners: machine.state.cliListeners)
        cli = made
        made.start()
    }

    /// Writes the state for the next image and executes it (same pid). The machine has counted
    /// the reload; if the exec does not happen, it hears `execFailed`.
    func reexec() {
        let state = machine.state
        if options.systemd {
            SystemdNotifier.notify("RELOADING=1\nSTATUS=Reloading Configuration.\nMONOTONIC_USEC=\(SystemdNotifier.monotonicMicroseconds())\n")
        }
        let memfd = hasp_memfd("hasp-master-state")
        guard memfd >= 0, BackgroundWriter.writeAll(memfd, state.encoded()) else {
            if memfd >= 0 { close(memfd) }
            apply(.execFailed("master: cannot create the state file for the reload: \(ConfigLoader.errorText(errno))"))
            return
        }
        // What is queued for the workers and the clients would be lost with this image.
        for link in links.values { link.flush() }
        _ = Self.answers.wait(timeout: .now() + .seconds(2))
        // These must survive exec; everything else stays close-on-exec.
        _ = hasp_set_cloexec(memfd, 0)
        for fd in state.descriptors { _ = hasp_set_cloexec(fd, 0) }
        ProcessEnvironment.set(MasterState.variable, String(memfd))
        var argv: [UnsafeMutablePointer<CChar>?] = ([state.binaryPath] + arguments).map { strdup($0) } + [nil]
        // Signals arriving from here on wait, pending, for the new image's handlers.
        SignalRouter.blockForExec()
        _ = hasp_execv(state.binaryPath, &argv)
        SignalRouter.blockHandledSignals()
        // Still here: the exec failed. Keep running the old image.
        let code = errno
        for p in argv { free(p) }
        unsetenv(MasterState.variable)
        close(memfd)
        for fd in state.descriptors { _ = hasp_set_cloexec(fd, 1) }
        apply(.execFailed("master: cannot re-execute \(state.binaryPath): \(ConfigLoader.errorText(code))"))
    }

    /// The previous image's state cannot be read (a corrupt memfd, or a format this binary does
    /// not know). Starting afresh would try to bind addresses its workers still hold, fail, and
    /// exit, taking the workers down with it (they see EOF on their channels). Instead the image
    /// keeps running without its state: its children are the workers, which go on serving; it
    /// forwards stop signals to them and reaps them, refuses reloads, and says so loudly.
    func keepServingWithoutState(_ error: String) {
        installSignals()
        let children = Self.children()
        printer.alert("master: cannot read the state of the previous master image (\(error)).")
        printer.alert("master: the running workers (\(children.map(String.init).joined(separator: ", "))) keep serving, but this master lost their sockets and channels: reloads are refused; stop and start hasp to recover.")
        apply(.startedWithoutState(children: children))
        reapExited()
    }

    /// This process's children, from every thread's `children` list.
    static func children() -> [pid_t] {
        let pid = getpid()
        guard let dir = opendir("/proc/\(pid)/task") else { return [] }
        defer { closedir(dir) }
        var result: [pid_t] = []
        while let entry = readdir(dir) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
            guard let tid = Int32(name), let bytes = FileReader.read("/proc/\(pid)/task/\(tid)/children") else { continue }
            result += String(decoding: bytes, as: UTF8.self).split(whereSeparator: { $0 == " " || $0 == "\n" }).compactMap { pid_t($0) }
        }
        return result.sorted()
    }
}
