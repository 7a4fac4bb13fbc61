#if canImport(Glibc)
import Glibc
#endif

/// Reads whole small files (configuration, payloads) at load time, never on an event loop.
public enum FileReader {
    public static func read(_ path: String) -> [UInt8]? {
        guard let f = fopen(path, "rb") else { return nil }
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
