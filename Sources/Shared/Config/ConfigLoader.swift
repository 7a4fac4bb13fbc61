#if canImport(Glibc)
import Glibc
#endif

/// Reads the `-f` arguments: files as given, directories as their non-hidden `*.cfg` files in
/// byte order, as HAProxy does.
public enum ConfigLoader {
    public struct Failure: Error, Sendable {
        public var message: String
    }

    public static func sources(for paths: [String]) throws(Failure) -> [ConfigParser.Source] {
        var sources: [ConfigParser.Source] = []
        for path in paths {
            var info = stat()
            guard stat(path, &info) == 0 else {
                throw Failure(message: "Cannot open configuration file/directory \(path) : \(errorText(errno))")
            }
            if (info.st_mode & S_IFMT) == S_IFDIR {
                for name in try cfgFiles(in: path) {
                    sources.append(try read(path.hasSuffix("/") ? path + name : path + "/" + name))
                }
            } else {
                sources.append(try read(path))
            }
        }
        return sources
    }

    static func cfgFiles(in directory: String) throws(Failure) -> [String] {
        guard let dir = opendir(directory) else {
            throw Failure(message: "Cannot open configuration file/directory \(directory) : \(errorText(errno))")
        }
        defer { closedir(dir) }
        var names: [String] = []
        while let entry = readdir(dir) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { raw -> String in
                let bytes = raw.prefix { $0 != 0 }
                return String(decoding: bytes, as: UTF8.self)
            }
            guard !name.hasPrefix("."), name.hasSuffix(".cfg"), name.count > 4 else { continue }
            names.append(name)
        }
        return names.sorted { Array($0.utf8).lexicographicallyPrecedes(Array($1.utf8)) }
    }

    static func read(_ path: String) throws(Failure) -> ConfigParser.Source {
        guard let bytes = FileReader.read(path) else {
            throw Failure(message: "Cannot open configuration file/directory \(path) : \(errorText(errno))")
        }
        return ConfigParser.Source(name: path, text: String(decoding: bytes, as: UTF8.self), mustEndWithLineFeed: true)
    }

    public static func errorText(_ code: Int32) -> String {
        guard let text = strerror(code) else { return "errno \(code)" }
        var bytes: [UInt8] = []
        var p = text
        while p.pointee != 0 {
            bytes.append(UInt8(bitPattern: p.pointee))
            p += 1
        }
        return String(decoding: bytes, as: UTF8.self)
    }
}
