#if canImport(Glibc)
import Glibc
#endif

/// Milliseconds that never go back: for deadlines, ages and rates.
public enum MonotonicClock {
    public static func milliseconds() -> Int {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return ts.tv_sec * 1000 + ts.tv_nsec / 1_000_000
    }
}

/// Calendar time: for what operators read (start times, last changes, dates in reports).
public enum WallClock {
    public static func seconds() -> Int { Int(time(nil)) }

    public static func milliseconds() -> Int {
        var ts = timespec()
        clock_gettime(CLOCK_REALTIME, &ts)
        return ts.tv_sec * 1000 + ts.tv_nsec / 1_000_000
    }

    public static func microseconds() -> Int {
        var ts = timespec()
        clock_gettime(CLOCK_REALTIME, &ts)
        return ts.tv_sec * 1_000_000 + ts.tv_nsec / 1000
    }
}
