#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Thin, allocation-light access to the process environment.
public enum ProcessEnvironment {
    public static func get(_ name: String) -> String? {
        guard let value = getenv(name) else { return nil }
        return String(cString: value)
    }

    public static func set(_ name: String, _ value: String) {
        setenv(name, value, 1)
    }

    /// Every variable's name.
    public static func names() -> [String] {
        var names: [String] = []
        // After clearenv(3) `environ` is null, whatever its imported type says.
        let start: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>? = environ
        guard var entry = start else { return names }
        while let pointer = entry.pointee {
            let text = String(cString: pointer)
            if let equals = text.firstIndex(of: "=") { names.append(String(text[..<equals])) }
            entry += 1
        }
        return names
    }
}
