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
}
