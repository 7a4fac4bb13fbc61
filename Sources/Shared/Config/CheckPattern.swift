#if canImport(Glibc)
import Glibc
#endif

/// A compiled extended regular expression (POSIX), for `rstatus`, `rstring` and `rbinary`
/// check rules. `regexec` on one compiled expression is safe from several threads.
public final class CheckPattern: @unchecked Sendable {
    private var compiled = regex_t()

    public init?(_ pattern: String) {
        guard regcomp(&compiled, pattern, REG_EXTENDED | REG_NOSUB) == 0 else { return nil }
    }

    deinit { regfree(&compiled) }

    /// Whether the expression matches somewhere in `text` (NUL bytes end the text, as in C).
    public func matches(_ text: String) -> Bool {
        regexec(&compiled, text, 0, nil, 0) == 0
    }
}
