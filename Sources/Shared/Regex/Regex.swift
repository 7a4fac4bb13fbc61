import CPCRE2
#if canImport(Glibc)
import Glibc
#endif

/// One PCRE2 match-data block per thread, reused by every match on that thread (allocating
/// one per match costs more than most matches).
enum ThreadMatchData {
    /// Room for the whole match and 31 groups; a pattern with more gets its own block.
    static let pairs: UInt32 = 32

    private static let key: pthread_key_t = {
        var key = pthread_key_t()
        pthread_key_create(&key) { pointer in
            if let pointer { pcre2_match_data_free_8(OpaquePointer(pointer)) }
        }
        return key
    }()

    static var current: OpaquePointer? {
        if let existing = pthread_getspecific(key) { return OpaquePointer(existing) }
        guard let created = pcre2_match_data_create_8(pairs, nil) else { return nil }
        pthread_setspecific(key, UnsafeRawPointer(created))
        return created
    }
}

/// A regular expression compiled once, when the configuration loads, with Debian's PCRE2 (the
/// library HAProxy's Debian build uses), and JIT-compiled where the platform allows. The compiled
/// code is immutable and shared by every thread; each match gets its own match data.
public final class Regex: @unchecked Sendable {
    /// Why a pattern does not compile: PCRE2's message and the byte offset it points at.
    public struct CompileError: Error, CustomStringConvertible, Equatable, Sendable {
        public var message: String
        public var offset: Int
        public var description: String { "\(message) at offset \(offset)" }
    }

    public let pattern: String
    public let caseInsensitive: Bool
    /// Whether PCRE2's JIT compiled it (matching then runs machine code).
    public let isJIT: Bool
    private let code: OpaquePointer
    /// Capture groups the pattern has (whether the per-thread match data is big enough).
    private let captureCount: UInt32

    public init(_ pattern: String, caseInsensitive: Bool = false) throws(CompileError) {
        self.pattern = pattern
        self.caseInsensitive = caseInsensitive
        var errorCode: Int32 = 0
        var errorOffset = 0
        let options = caseInsensitive ? UInt32(PCRE2_CASELESS) : 0
        let compiled = pattern.withCString { p in
            pcre2_compile_8(UnsafeRawPointer(p).assumingMemoryBound(to: UInt8.self), pattern.utf8.count, options,
                            &errorCode, &errorOffset, nil)
        }
        guard let compiled else {
            throw CompileError(message: Self.message(errorCode), offset: errorOffset)
        }
        code = compiled
        isJIT = pcre2_jit_compile_8(compiled, UInt32(PCRE2_JIT_COMPLETE)) == 0
        var captures: UInt32 = 0
        pcre2_pattern_info_8(compiled, UInt32(PCRE2_INFO_CAPTURECOUNT), &captures)
        captureCount = captures
    }

    deinit { pcre2_code_free_8(code) }

    /// Whether the pattern matches somewhere in `subject`.
    public func matches(_ subject: UnsafeRawBufferPointer) -> Bool {
        // A too-small ovector still reports the match (with 0): any pattern can use it.
        guard let data = ThreadMatchData.current else { return false }
        return Self.withBase(subject) { pcre2_match_8(code, $0, subject.count, 0, 0, data, nil) } >= 0
    }

    public func matches(_ subject: String) -> Bool {
        var subject = subject
        return subject.withUTF8 { matches(UnsafeRawBufferPointer($0)) }
    }

    /// The byte ranges of the whole match and of each capture group (nil for a group that did
    /// not take part), or nil when the pattern does not match.
    public func firstMatch(in subject: String, from start: Int = 0) -> [Range<Int>?]? {
        var subject = subject
        return subject.withUTF8 { buffer -> [Range<Int>?]? in
            let own = captureCount + 1 > ThreadMatchData.pairs
            guard let data = own ? pcre2_match_data_create_from_pattern_8(code, nil) : ThreadMatchData.current else { return nil }
            defer { if own { pcre2_match_data_free_8(data) } }
            let count = Self.withBase(UnsafeRawBufferPointer(buffer)) { pcre2_match_8(code, $0, buffer.count, start, 0, data, nil) }
            guard count > 0, let vector = pcre2_get_ovector_pointer_8(data) else { return nil }
            let pairs = min(Int(pcre2_get_ovector_count_8(data)), Int(captureCount) + 1)
            var ranges: [Range<Int>?] = []
            for i in 0..<pairs {
                let lower = vector[2 * i]
                let upper = vector[2 * i + 1]
                ranges.append(lower == Self.unset || upper == Self.unset ? nil : Int(lower)..<Int(upper))
            }
            return ranges
        }
    }

    /// PCRE2_UNSET: all bits set.
    private static let unset = Int(bitPattern: UInt.max)

    /// The subject's first byte (PCRE2 wants a pointer even for an empty subject).
    private static func withBase<T>(_ subject: UnsafeRawBufferPointer, _ body: (UnsafePointer<UInt8>) -> T) -> T {
        if let base = subject.baseAddress { return body(base.assumingMemoryBound(to: UInt8.self)) }
        var zero: UInt8 = 0
        return withUnsafePointer(to: &zero) { body($0) }
    }

    private static func message(_ code: Int32) -> String {
        var buffer = [UInt8](repeating: 0, count: 256)
        let n = pcre2_get_error_message_8(code, &buffer, buffer.count)
        return n > 0 ? String(decoding: buffer[0..<Int(n)], as: UTF8.self) : "error \(code)"
    }
}
