/// Evaluates the expressions of `.if`/`.elif` blocks and of `-cc`:
/// `defined()`, `feature()`, `streq()`, `strneq()`, `strstr()`, `version_atleast()`, `version_before()`,
/// `ssllib_name_startswith()`, `openssl_version_atleast()`, `openssl_version_before()`,
/// `awslc_api_atleast()`, `awslc_api_before()`, numbers, `!`, `&&`, `||` and parentheses
/// (`&&` binds tighter than `||`).
public struct ConditionEvaluator: Sendable {
    public struct Failure: Error, Equatable, Sendable {
        public var message: String
    }

    public var isDefined: @Sendable (String) -> Bool
    public var features: Set<String>
    public var version: String
    /// The TLS library as it names itself ("OpenSSL 3.0.19 27 Jan 2026").
    public var tlsLibrary: String

    public init(
        isDefined: @escaping @Sendable (String) -> Bool = { ProcessEnvironment.get($0) != nil },
        features: Set<String> = HaspVersion.features,
        version: String = HaspVersion.compatibilityVersion,
        tlsLibrary: String = CertificateCheck.libraryVersion
    ) {
        self.isDefined = isDefined
        self.features = features
        self.version = version
        self.tlsLibrary = tlsLibrary
    }

    /// The library's version number ("3.0.19"), the second word of its name.
    var tlsLibraryVersion: String {
        let words = tlsLibrary.split(separator: " ")
        return words.count > 1 ? String(words[1]) : ""
    }

    public func evaluate(_ text: String) throws(Failure) -> Bool {
        var parser = Parser(chars: Array(text.unicodeScalars), evaluator: self)
        let value = try parser.parseOr()
        parser.skipSpaces()
        if parser.index < parser.chars.count {
            throw Failure(message: "unparsable conditional expression '\(text)'")
        }
        return value
    }

    fileprivate func call(_ name: String, _ args: [String], _ text: String) throws(Failure) -> Bool {
        func need(_ n: Int) throws(Failure) {
            if args.count != n {
                throw Failure(message: "function '\(name)' expects \(n) argument\(n == 1 ? "" : "s") in '\(text)'")
            }
        }
        switch name {
        case "defined": try need(1); return isDefined(args[0])
        case "feature": try need(1); return features.contains(args[0])
        case "streq": try need(2); return args[0] == args[1]
        case "strneq": try need(2); return args[0] != args[1]
        case "strstr": try need(2); return args[1].isEmpty || args[0].contains(args[1])
        case "version_atleast":
            try need(1)
            guard let wanted = VersionNumber(args[0]), let have = VersionNumber(version) else {
                throw Failure(message: "invalid version '\(args[0])' in '\(text)'")
            }
            return have >= wanted
        case "version_before":
            try need(1)
            guard let wanted = VersionNumber(args[0]), let have = VersionNumber(version) else {
                throw Failure(message: "invalid version '\(args[0])' in '\(text)'")
            }
            return have < wanted
        case "enabled": try need(1); return false
        case "ssllib_name_startswith": try need(1); return tlsLibrary.hasPrefix(args[0])
        case "openssl_version_atleast", "openssl_version_before":
            try need(1)
            guard tlsLibrary.hasPrefix("OpenSSL") else { return false }
            guard let wanted = VersionNumber(args[0]), let have = VersionNumber(tlsLibraryVersion) else {
                throw Failure(message: "invalid version '\(args[0])' in '\(text)'")
            }
            return name == "openssl_version_atleast" ? have >= wanted : have < wanted
        case "awslc_api_atleast", "awslc_api_before":
            // The library is OpenSSL, not AWS-LC: neither holds.
            try need(1)
            guard Int(args[0]) != nil else { throw Failure(message: "invalid version '\(args[0])' in '\(text)'") }
            return false
        default:
            throw Failure(message: "unknown conditional expression function '\(name)' in '\(text)'")
        }
    }

    private struct Parser {
        var chars: [Unicode.Scalar]
        var index = 0
        let evaluator: ConditionEvaluator
        var text: String { String(String.UnicodeScalarView(chars)) }

        init(chars: [Unicode.Scalar], evaluator: ConditionEvaluator) {
            self.chars = chars
            self.evaluator = evaluator
        }

        mutating func skipSpaces() {
            while index < chars.count, chars[index] == " " || chars[index] == "\t" { index += 1 }
        }

        mutating func consume(_ s: String) -> Bool {
            skipSpaces()
            let scalars = Array(s.unicodeScalars)
            guard index + scalars.count <= chars.count, Array(chars[index..<index + scalars.count]) == scalars else {
                return false
            }
            index += scalars.count
            return true
        }

        mutating func parseOr() throws(Failure) -> Bool {
            var value = try parseAnd()
            while consume("||") {
                let rhs = try parseAnd()
                value = value || rhs
            }
            return value
        }

        mutating func parseAnd() throws(Failure) -> Bool {
            var value = try parseTerm()
            while consume("&&") {
                let rhs = try parseTerm()
                value = value && rhs
            }
            return value
        }

        mutating func parseTerm() throws(Failure) -> Bool {
            skipSpaces()
            if consume("!") { return try !parseTerm() }
            if consume("(") {
                let value = try parseOr()
                guard consume(")") else { throw Failure(message: "unparsable conditional expression '\(text)'") }
                return value
            }
            let start = index
            while index < chars.count, isWordScalar(chars[index]) { index += 1 }
            let word = String(String.UnicodeScalarView(chars[start..<index]))
            if word.isEmpty {
                if index >= chars.count { return false }
                throw Failure(message: "unparsable conditional expression '\(text)'")
            }
            skipSpaces()
            if index < chars.count, chars[index] == "(" {
                index += 1
                var args: [String] = []
                var current = ""
                var closed = false
                while index < chars.count {
                    let c = chars[index]
                    index += 1
                    if c == ")" { closed = true; break }
                    if c == "," { args.append(current); current = ""; continue }
                    current.unicodeScalars.append(c)
                }
                guard closed else { throw Failure(message: "unparsable conditional expression '\(text)'") }
                if !(args.isEmpty && current.isEmpty) { args.append(current) }
                return try evaluator.call(word, args, text)
            }
            if let n = Int(word) { return n != 0 }
            throw Failure(message: "unparsable conditional expression '\(word)'")
        }

        func isWordScalar(_ c: Unicode.Scalar) -> Bool {
            c.properties.isAlphabetic || ("0"..."9").contains(c) || c == "_" || c == "-" || c == "."
        }
    }
}

/// A dotted version with an optional `-devN`, `-preN` or `-rcN` suffix, ordered as HAProxy orders them.
public struct VersionNumber: Comparable, Sendable {
    var numbers: [Int]
    var stage: Int   // dev 0, pre 1, rc 2, release 3
    var stageNumber: Int

    public init?(_ text: String) {
        let parts = text.split(separator: "-", maxSplits: 1)
        guard let head = parts.first else { return nil }
        let nums = head.split(separator: ".").map { Int($0) }
        guard !nums.isEmpty, nums.allSatisfy({ $0 != nil }) else { return nil }
        numbers = nums.map { $0! }
        stage = 3
        stageNumber = 0
        if parts.count == 2 {
            let suffix = parts[1]
            for (prefix, rank) in [("dev", 0), ("pre", 1), ("rc", 2)] where suffix.hasPrefix(prefix) {
                stage = rank
                let digits = suffix.dropFirst(prefix.count).prefix { $0.isNumber }
                stageNumber = Int(digits) ?? 0
            }
        }
    }

    public static func < (a: VersionNumber, b: VersionNumber) -> Bool {
        let n = max(a.numbers.count, b.numbers.count)
        for i in 0..<n {
            let x = i < a.numbers.count ? a.numbers[i] : 0
            let y = i < b.numbers.count ? b.numbers[i] : 0
            if x != y { return x < y }
        }
        if a.stage != b.stage { return a.stage < b.stage }
        return a.stageNumber < b.stageNumber
    }

    public static func == (a: VersionNumber, b: VersionNumber) -> Bool { !(a < b) && !(b < a) }
}
