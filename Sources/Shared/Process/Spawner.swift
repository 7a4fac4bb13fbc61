import CHaspSys

#if canImport(Glibc)
import Glibc
#endif

/// Starts a new process image with `posix_spawn` (never `fork` in a threaded process), with
/// chosen descriptors placed at fixed numbers, every other descriptor closed, and signal
/// dispositions and mask reset.
public enum Spawner {
    public struct Failure: Error, CustomStringConvertible, Sendable {
        public var code: Int32
        public var description: String { "posix_spawn failed: \(ConfigLoader.errorText(code))" }
    }

    public static func spawn(path: String, arguments: [String], extraEnvironment: [String: String],
                             descriptors: [(source: Int32, target: Int32)], newSession: Bool) throws(Failure) -> pid_t {
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        // stdin/stdout/stderr stay; the listed descriptors move to their numbers; the rest close.
        var highest: Int32 = 2
        for (source, target) in descriptors {
            posix_spawn_file_actions_adddup2(&actions, source, target)
            highest = max(highest, target)
        }
        hasp_spawn_add_closefrom(&actions, highest + 1)

        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        var empty = sigset_t()
        sigemptyset(&empty)
        posix_spawnattr_setsigmask(&attributes, &empty)
        var defaults = sigset_t()
        sigfillset(&defaults)
        posix_spawnattr_setsigdefault(&attributes, &defaults)
        var flags = Int16(POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF)
        if newSession { flags |= hasp_spawn_setsid_flag() }
        posix_spawnattr_setflags(&attributes, flags)

        var environment: [String: String] = [:]
        var cursor = environ
        while let entry = cursor.pointee {
            let text = String(decoding: UnsafeRawBufferPointer(start: entry, count: strlen(entry)), as: UTF8.self)
            if let eq = text.firstIndex(of: "=") {
                environment[String(text[..<eq])] = String(text[text.index(after: eq)...])
            }
            cursor += 1
        }
        for (k, v) in extraEnvironment { environment[k] = v }

        var argv: [UnsafeMutablePointer<CChar>?] = ([path] + arguments).map { strdup($0) } + [nil]
        var envp: [UnsafeMutablePointer<CChar>?] = environment.map { strdup("\($0.key)=\($0.value)") } + [nil]
        defer {
            for p in argv { free(p) }
            for p in envp { free(p) }
        }
        var pid: pid_t = 0
        let rc = posix_spawn(&pid, path, &actions, &attributes, &argv, &envp)
        guard rc == 0 else { throw Failure(code: rc) }
        return pid
    }

    /// The path of the running executable.
    public static func currentExecutable() -> String {
        DiagnosticPrinter.executablePath()
    }
}
