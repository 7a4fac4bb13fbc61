/// Splits one configuration line into words the way HAProxy does:
/// `#` comments, single quotes (literal), double quotes (escapes and `${VAR}` expansion),
/// backslash escapes, and environment expansion outside single quotes.
public struct LineLexer: Sendable {
    public enum LexError: Error, Equatable, Sendable {
        case unmatchedQuote(Character)
        case unfinishedEnvironmentVariable
        case invalidEscape(String)
        case tooManyWords(Int)
    }

    public static let maximumWords = 64

    /// Looks up an environment variable; injected so tests do not depend on the process environment.
    public var environment: @Sendable (String) -> String?

    public init(environment: @escaping @Sendable (String) -> String? = { ProcessEnvironment.get($0) }) {
        self.environment = environment
    }

    public func words(_ line: Substring) throws(LexError) -> [String] {
        var words: [String] = []
        var current: [UInt8] = []
        var inWord = false
        var quote: UInt8? = nil
        let bytes = Array(line.utf8)
        var i = 0

        func flush() {
            if inWord {
                words.append(String(decoding: current, as: UTF8.self))
                current.removeAll(keepingCapacity: true)
                inWord = false
            }
        }

        while i < bytes.count {
            let c = bytes[i]
            if let q = quote {
                if c == q {
                    quote = nil
                    i += 1
                    continue
                }
                if q == UInt8(ascii: "'") {
                    current.append(c)
                    i += 1
                    continue
                }
                // Inside double quotes: escapes and variables.
                if c == UInt8(ascii: "\\") {
                    i = try escape(bytes, i, into: &current)
                    continue
                }
                if c == UInt8(ascii: "$") {
                    i = try expand(bytes, i, into: &current)
                    continue
                }
                current.append(c)
                i += 1
                continue
            }
            switch c {
            case UInt8(ascii: " "), UInt8(ascii: "\t"), UInt8(ascii: "\r"), UInt8(ascii: "\n"):
                flush()
                i += 1
            case UInt8(ascii: "#"):
                flush()
                i = bytes.count
            case UInt8(ascii: "'"), UInt8(ascii: "\""):
                quote = c
                inWord = true
                i += 1
            case UInt8(ascii: "\\"):
                inWord = true
                i = try escape(bytes, i, into: &current)
            default:
                inWord = true
                current.append(c)
                i += 1
            }
        }
        if let q = quote { throw .unmatchedQuote(Character(Unicode.Scalar(q))) }
        flush()
        if words.count > Self.maximumWords { throw .tooManyWords(words.count) }
        return words
    }

    private func escape(_ bytes: [UInt8], _ start: Int, into out: inout [UInt8]) throws(LexError) -> Int {
        let next = start + 1
        guard next < bytes.count else {
            out.append(UInt8(ascii: "\\"))
            return next
        }
        switch bytes[next] {
        case UInt8(ascii: "r"): out.append(13)
        case UInt8(ascii: "n"): out.append(10)
        case UInt8(ascii: "t"): out.append(9)
        case UInt8(ascii: "x"):
            guard next + 2 < bytes.count, let h = hexValue(bytes[next + 1]), let l = hexValue(bytes[next + 2]) else {
                throw .invalidEscape("\\x")
            }
            out.append(h << 4 | l)
            return next + 3
        case UInt8(ascii: " "), UInt8(ascii: "#"), UInt8(ascii: "\\"), UInt8(ascii: "'"), UInt8(ascii: "\""),
             UInt8(ascii: "$"), UInt8(ascii: "\t"):
            out.append(bytes[next])
        default:
            // HAProxy keeps unknown escapes as they are (the backslash included).
            out.append(UInt8(ascii: "\\"))
            out.append(bytes[next])
        }
        return next + 1
    }

    private func hexValue(_ c: UInt8) -> UInt8? {
        switch c {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): return c - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): return c - UInt8(ascii: "a") + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): return c - UInt8(ascii: "A") + 10
        default: return nil
        }
    }

    /// Expands every `$NAME`, `${NAME}` and `${NAME-default}` of `text` (outside double quotes
    /// HAProxy expands variables only in addresses, which do it themselves through this).
    public func expandVariables(_ text: String) -> String {
        guard text.contains("$") else { return text }
        let bytes = Array(text.utf8)
        var out: [UInt8] = []
        var i = 0
        while i < bytes.count {
            if bytes[i] == UInt8(ascii: "$") {
                guard let next = try? expand(bytes, i, into: &out) else { return text }
                i = next
            } else {
                out.append(bytes[i])
                i += 1
            }
        }
        return String(decoding: out, as: UTF8.self)
    }

    /// Expands `$NAME`, `${NAME}` and `${NAME-default}` starting at the `$`.
    private func expand(_ bytes: [UInt8], _ start: Int, into out: inout [UInt8]) throws(LexError) -> Int {
        var i = start + 1
        func isNameByte(_ c: UInt8) -> Bool {
            (c >= 65 && c <= 90) || (c >= 97 && c <= 122) || (c >= 48 && c <= 57) || c == UInt8(ascii: "_")
        }
        if i < bytes.count, bytes[i] == UInt8(ascii: "{") {
            i += 1
            let nameStart = i
            while i < bytes.count, isNameByte(bytes[i]) { i += 1 }
            let name = String(decoding: bytes[nameStart..<i], as: UTF8.self)
            var fallback: [UInt8]? = nil
            if i < bytes.count, bytes[i] == UInt8(ascii: "-") {
                i += 1
                let defStart = i
                while i < bytes.count, bytes[i] != UInt8(ascii: "}") { i += 1 }
                fallback = Array(bytes[defStart..<i])
            }
            guard i < bytes.count, bytes[i] == UInt8(ascii: "}") else { throw .unfinishedEnvironmentVariable }
            i += 1
            if let value = environment(name) {
                out.append(contentsOf: value.utf8)
            } else if let fallback {
                out.append(contentsOf: fallback)
            }
            return i
        }
        let nameStart = i
        while i < bytes.count, isNameByte(bytes[i]) { i += 1 }
        if i == nameStart {
            out.append(UInt8(ascii: "$"))
            return i
        }
        let name = String(decoding: bytes[nameStart..<i], as: UTF8.self)
        if let value = environment(name) { out.append(contentsOf: value.utf8) }
        return i
    }
}
