#if canImport(Glibc)
import Glibc
#endif

/// Unbuffered writes to the standard descriptors; safe from any thread.
public enum StandardStreams {
    public static func writeError(_ text: String) { write(fd: 2, text) }
    public static func writeOutput(_ text: String) { write(fd: 1, text) }

    static func write(fd: Int32, _ text: String) {
        BackgroundWriter.writeAll(fd, Array(text.utf8))
    }
}
