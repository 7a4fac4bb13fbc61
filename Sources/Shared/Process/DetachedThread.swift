#if canImport(Glibc)
import Glibc
#endif

/// A plain thread for blocking loops (signal pipe, CLI sessions), outside Dispatch's pool so
/// that a session blocked for minutes (`wait 300`) never starves anything else.
public enum DetachedThread {
    private final class Box { let body: () -> Void; init(_ body: @escaping () -> Void) { self.body = body } }

    /// False when no thread could be made (the body then never runs: the caller cleans up).
    @discardableResult
    public static func start(_ body: @escaping () -> Void) -> Bool {
        let box = Unmanaged.passRetained(Box(body)).toOpaque()
        var attributes = pthread_attr_t()
        pthread_attr_init(&attributes)
        // CLI sessions need little stack; keep thousands of them cheap.
        pthread_attr_setstacksize(&attributes, 512 * 1024)
        var thread = pthread_t()
        let rc = pthread_create(&thread, &attributes, { raw in
            let box = Unmanaged<Box>.fromOpaque(raw!).takeRetainedValue()
            box.body()
            return nil
        }, box)
        pthread_attr_destroy(&attributes)
        if rc != 0 {
            // No thread: run nothing, but do not leak the closure.
            Unmanaged<Box>.fromOpaque(box).release()
            return false
        }
        pthread_detach(thread)
        return true
    }
}
