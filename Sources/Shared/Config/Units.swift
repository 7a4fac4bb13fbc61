/// HAProxy's time and size arguments.
public enum Units {
    public enum TimeError: Error, Equatable, Sendable {
        case empty
        case unexpectedCharacter(Character)
        case overflow
    }

    /// Parses `<n>[us|ms|s|m|h|d]` into milliseconds (`defaultUnitMs` is the multiplier for a bare
    /// number: 1 for timeouts). Microseconds round up so that `1us` never becomes "no timeout".
    public static func milliseconds(_ text: String, defaultUnitMs: Int64 = 1) throws(TimeError) -> Int64 {
        var digits = Substring(text)
        var value: Int64 = 0
        var sawDigit = false
        while let c = digits.first, let d = c.wholeNumberValue, c.isASCII {
            sawDigit = true
            let (m, o1) = value.multipliedReportingOverflow(by: 10)
            let (a, o2) = m.addingReportingOverflow(Int64(d))
            if o1 || o2 { throw .overflow }
            value = a
            digits = digits.dropFirst()
        }
        guard sawDigit else {
            if let c = digits.first { throw .unexpectedCharacter(c) }
            throw .empty
        }
        let factor: (num: Int64, den: Int64)
        switch digits {
        case "": factor = (defaultUnitMs, 1)
        case "us": factor = (1, 1000)
        case "ms": factor = (1, 1)
        case "s": factor = (1000, 1)
        case "m": factor = (60_000, 1)
        case "h": factor = (3_600_000, 1)
        case "d": factor = (86_400_000, 1)
        default: throw .unexpectedCharacter(digits.first!)
        }
        let (scaled, overflow) = value.multipliedReportingOverflow(by: factor.num)
        if overflow || scaled > Int64(Int32.max) { throw .overflow }
        if factor.den == 1 { return scaled }
        return (scaled + factor.den - 1) / factor.den
    }

    /// Parses a size with an optional `k`, `m` or `g` suffix (powers of 1024).
    public static func size(_ text: String) -> Int? {
        guard let last = text.last else { return nil }
        let multipliers: [Character: Int] = ["k": 1024, "K": 1024, "m": 1 << 20, "M": 1 << 20, "g": 1 << 30, "G": 1 << 30]
        if let m = multipliers[last] {
            guard let n = Int(text.dropLast()), n >= 0 else { return nil }
            return n * m
        }
        guard let n = Int(text), n >= 0 else { return nil }
        return n
    }
}

/// Suggests the closest known word, as HAProxy's "did you mean ... maybe ?".
public enum Suggestion {
    public static func closest(to word: String, in candidates: [String]) -> String? {
        var best: (String, Int)? = nil
        let w = Array(word.lowercased())
        for candidate in candidates {
            let d = distance(w, Array(candidate.lowercased()))
            if best == nil || d < best!.1 { best = (candidate, d) }
        }
        guard let (name, d) = best else { return nil }
        // Accept a suggestion only when most of the word survives the edit.
        let limit = max(1, min(w.count, name.count) / 2)
        return d <= limit ? name : nil
    }

    /// Optimal-string-alignment distance: insertions, deletions, substitutions, transpositions.
    static func distance(_ a: [Character], _ b: [Character]) -> Int {
        if a.isEmpty { return b.count }
        if b.isEmpty { return a.count }
        var d = [[Int]](repeating: [Int](repeating: 0, count: b.count + 1), count: a.count + 1)
        for i in 0...a.count { d[i][0] = i }
        for j in 0...b.count { d[0][j] = j }
        for i in 1...a.count {
            for j in 1...b.count {
                let cost = a[i - 1] == b[j - 1] ? 0 : 1
                d[i][j] = min(d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + cost)
                if i > 1, j > 1, a[i - 1] == b[j - 2], a[i - 2] == b[j - 1] {
                    d[i][j] = min(d[i][j], d[i - 2][j - 2] + 1)
                }
            }
        }
        return d[a.count][b.count]
    }
}
