#if canImport(Glibc)
import Glibc
#endif

/// A message for the operator, printed on stderr in HAProxy's `[LEVEL]    (pid) : text` layout.
public struct Diagnostic: Sendable, Equatable {
    public enum Level: Int, Sendable, Comparable {
        case diag = 0, notice, warning, alert

        public var label: String {
            switch self {
            case .diag: return "DIAG"
            case .notice: return "NOTICE"
            case .warning: return "WARNING"
            case .alert: return "ALERT"
            }
        }

        public static func < (a: Level, b: Level) -> Bool { a.rawValue < b.rawValue }
    }

    public var level: Level
    /// The text after `(pid) : `, including a context such as `config : `.
    public var text: String

    public init(_ level: Level, _ text: String) {
        self.level = level
        self.text = text
    }

    public func formatted(pid: Int32) -> String {
        let label = "[\(level.label)]"
        let padded = label + String(repeating: " ", count: max(0, 10 - label.count))
        return "\(padded) (\(pid)) : \(text)"
    }
}

/// Writes diagnostics to stderr; remembers whether a warning or alert was already printed so that
/// the version and path notices come first, as in HAProxy.
public final class DiagnosticPrinter: @unchecked Sendable {
    public static let shared = DiagnosticPrinter()

    private var lock = pthread_mutex_t()
    private var introduced = false
    public var quiet = false
    /// Every message of this load attempt, for `show startup-logs` (read it through
    /// `startupLog`: event loops append while CLI threads read).
    private var messages: [String] = []
    /// Once the process serves, messages go through a writer thread: an event loop reporting a
    /// server's state change never waits for stderr.
    private var background: BackgroundWriter?

    private init() { pthread_mutex_init(&lock, nil) }

    public var startupLog: [String] {
        pthread_mutex_lock(&lock)
        defer { pthread_mutex_unlock(&lock) }
        return messages
    }

    /// From now on, stderr is written by a thread of its own (a serving process calls this
    /// once its event loops run; messages printed before, at load, stay synchronous so that
    /// they come out in order with everything else the process prints then).
    public func writeInBackground() {
        pthread_mutex_lock(&lock)
        defer { pthread_mutex_unlock(&lock) }
        if background == nil { background = BackgroundWriter.standardError }
    }

    public func emit(_ diagnostic: Diagnostic) {
        pthread_mutex_lock(&lock)
        defer { pthread_mutex_unlock(&lock) }
        let pid = getpid()
        var lines: [String] = []
        if !introduced, diagnostic.level >= .warning {
            introduced = true
            lines.append(Diagnostic(.notice, "hasp version is \(HaspVersion.version)").formatted(pid: pid))
            lines.append(Diagnostic(.notice, "path to executable is \(Self.executablePath())").formatted(pid: pid))
        }
        lines.append(diagnostic.formatted(pid: pid))
        // Bounded: health checks keep reporting for the life of the process.
        if messages.count < 1_000 { messages.append(contentsOf: lines) }
        guard !quiet || diagnostic.level == .alert else { return }
        let text = lines.joined(separator: "\n") + "\n"
        if let background {
            background.write(Array(text.utf8))
        } else {
            StandardStreams.writeError(text)
        }
    }

    public func notice(_ text: String) { emit(Diagnostic(.notice, text)) }
    public func warning(_ text: String) { emit(Diagnostic(.warning, text)) }
    public func alert(_ text: String) { emit(Diagnostic(.alert, text)) }

    public static func executablePath() -> String {
        var buffer = [CChar](repeating: 0, count: 4096)
        let n = readlink("/proc/self/exe", &buffer, buffer.count - 1)
        guard n > 0 else { return CommandLine.arguments.first ?? "hasp" }
        return String(decoding: buffer[0..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }
}
