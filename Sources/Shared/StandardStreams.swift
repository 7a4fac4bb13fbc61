#if canImport(Glibc)
import Glibc
#endif

/// Unbuffered writes to the standard descriptors; safe from any thread.
public enum StandardStreams {
    public static func writeError(_ text: String) { write(fd: 2, text) }
    public static func writeOutput(_ text: String) { write(fd: 1, text) }

    static func write(fd: Int32, _ text: String) {
        var bytes = Array(text.utf8)
        var offset = 0
        while offset < bytes.count {
            let n = bytes.withUnsafeMutableBytes { Glibc.write(fd, $0.baseAddress! + offset, $0.count - offset) }
            if n < 0 {
                if errno == EINTR { continue }
                return
            }
            offset += n
        }
        bytes.removeAll()
    }
}
