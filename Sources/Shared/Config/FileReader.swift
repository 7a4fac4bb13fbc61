#if canImport(Glibc)
import Glibc
#endif

/// Reads whole small files (configuration, payloads) at load time, never on an event loop.
public enum FileReader {
    private final class Base {
        let path: String
        init(_ path: String) { self.path = path }
    }

    private static let key: pthread_key_t = {
        var key = pthread_key_t()
        pthread_key_create(&key) { pointer in
            if let pointer { Unmanaged<AnyObject>.fromOpaque(pointer).release() }
        }
        return key
    }()

    /// `default-path`: where relative paths start while this thread reads a configuration (nil:
    /// the current directory). HAProxy changes directory for it; a per-thread base leaves the
    /// process's directory alone and lets configurations load side by side.
    public static var baseDirectory: String? {
        get { pthread_getspecific(key).map { Unmanaged<Base>.fromOpaque($0).takeUnretainedValue().path } }
        set {
            if let old = pthread_getspecific(key) { Unmanaged<Base>.fromOpaque(old).release() }
            pthread_setspecific(key, newValue.map { UnsafeRawPointer(Unmanaged.passRetained(Base($0)).toOpaque()) })
        }
    }

    /// `path` as the configuration means it: relative paths from `baseDirectory`.
    public static func resolve(_ path: String) -> String {
        guard !path.isEmpty, !path.hasPrefix("/"), let base = baseDirectory, !base.isEmpty else { return path }
        return base + "/" + path
    }

    public static func read(_ path: String) -> [UInt8]? {
        guard let f = fopen(resolve(path), "rb") else { return nil }
        defer { fclose(f) }
        var result: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = fread(&buffer, 1, buffer.count, f)
            if n > 0 { result.append(contentsOf: buffer[0..<n]) }
            if n < buffer.count { break }
        }
        return ferror(f) == 0 ? result : nil
    }
}

extension FileReader {
    /// The process's current directory (for messages).
    public static func currentDirectory() -> String {
        var buffer = [CChar](repeating: 0, count: Int(PATH_MAX) + 1)
        guard getcwd(&buffer, buffer.count) != nil else { return "" }
        return String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }
}
