#if canImport(Glibc)
import Glibc
#endif

/// The files a configuration names for TLS (certificates, keys, CA and CRL files, crt-lists),
/// read at parse time. The master (and a standalone process) reads them from disk and records
/// what it read; a worker parses the same text against that record, passed to it with the
/// configuration, so it never needs to read `/etc/ssl/private` (it may run unprivileged or
/// chrooted), and it serves exactly what the master validated.
public final class ConfigFiles {
    /// What was read: file contents by path, and directory listings (sorted names).
    public struct Bundle: Sendable, Equatable {
        public var files: [String: [UInt8]] = [:]
        public var directories: [String: [String]] = [:]
        public init(files: [String: [UInt8]] = [:], directories: [String: [String]] = [:]) {
            self.files = files
            self.directories = directories
        }
        public var isEmpty: Bool { files.isEmpty && directories.isEmpty }
    }

    public enum Entry {
        case file([UInt8])
        case directory([String])
        /// Missing or unreadable: the system's reason ("No such file or directory").
        case failed(String)
    }

    private let source: Bundle?
    public private(set) var recorded = Bundle()

    /// Reads from disk and records.
    public init() { source = nil }

    /// Reads only from what a master recorded.
    public init(bundle: Bundle) { source = bundle }

    /// A file or a directory at `path`.
    public func entry(_ path: String) -> Entry {
        if let source {
            if let bytes = source.files[path] { return .file(bytes) }
            if let names = source.directories[path] { return .directory(names) }
            return .failed(ConfigLoader.errorText(ENOENT))
        }
        var info = stat()
        guard stat(FileReader.resolve(path), &info) == 0 else { return .failed(ConfigLoader.errorText(errno)) }
        if (info.st_mode & S_IFMT) == S_IFDIR {
            guard let dir = opendir(FileReader.resolve(path)) else { return .failed(ConfigLoader.errorText(errno)) }
            defer { closedir(dir) }
            var names: [String] = []
            while let item = readdir(dir) {
                let name = withUnsafeBytes(of: item.pointee.d_name) { raw in
                    String(decoding: raw.prefix { $0 != 0 }, as: UTF8.self)
                }
                if name != "." && name != ".." { names.append(name) }
            }
            names.sort { Array($0.utf8).lexicographicallyPrecedes(Array($1.utf8)) }
            recorded.directories[path] = names
            return .directory(names)
        }
        guard let bytes = FileReader.read(path) else { return .failed(ConfigLoader.errorText(errno)) }
        recorded.files[path] = bytes
        return .file(bytes)
    }

    /// A regular file's bytes, or nil when it does not exist.
    public func file(_ path: String) -> [UInt8]? {
        if case .file(let bytes) = entry(path) { return bytes }
        return nil
    }
}
