import Foundation

/// Every converter Hasp knows, in one declarative table.
public enum ConverterTable {
    public static let all: [ConverterDefinition] = stringConverters + arithmetic + hashes + mapConverters + misc
        + binaryConverters + StickFetches.converters
    public static let byName: [String: ConverterDefinition] = {
        var table: [String: ConverterDefinition] = [:]
        for c in all where table[c.name] == nil { table[c.name] = c }
        return table
    }()

    static func string(_ name: String, _ args: [ArgumentKind] = [], required: Int = 0,
                       _ f: @escaping @Sendable (String, [SampleArgument], SampleContext) -> String?) -> ConverterDefinition {
        ConverterDefinition(name, args, required: required, .string, .string) { v, a, c in
            v.asString.flatMap { f($0, a, c) }.map { .string($0) }
        }
    }

    static let stringConverters: [ConverterDefinition] = [
        string("lower") { s, _, _ in s.asciiLowercased },
        string("upper") { s, _, _ in s.asciiUppercased },
        // Declared for any input so that a binary sample reaches it as bytes: haproxy's cast
        // makes it a string ending at its first zero byte, counted in bytes.
        ConverterDefinition("length", .any, .int) { v, _, _ in
            if case .binary(let b) = v { return .int(Int64(b.prefix { $0 != 0 }.count)) }
            return v.asString.map { .int(Int64($0.utf8.count)) }
        },
        ConverterDefinition("bytes", [.int, .int], required: 1, .binary, .binary) { v, a, _ in
            guard let b = v.asBinary else { return nil }
            let offset = Int(a[0].int ?? 0)
            guard offset >= 0, offset <= b.count else { return nil }
            let length = a.count > 1 ? Int(a[1].int ?? 0) : b.count - offset
            guard length >= 0 else { return nil }
            let end = min(b.count, offset &+ length)
            return .binary(Array(b[offset..<end]))
        },
        string("field", [.int, .string, .int], required: 2) { s, a, _ in
            let separators = Set(a[1].string ?? "")
            let parts = s.split(omittingEmptySubsequences: false) { separators.contains($0) }
            let index = Int(a[0].int ?? 1)
            let count = a.count > 2 ? Int(a[2].int ?? 1) : 1
            return pick(parts, index, count, in: s)
        },
        string("word", [.int, .string, .int], required: 2) { s, a, _ in
            let separators = Set(a[1].string ?? "")
            let parts = s.split(omittingEmptySubsequences: true) { separators.contains($0) }
            let index = Int(a[0].int ?? 1)
            let count = a.count > 2 ? Int(a[2].int ?? 1) : 1
            return pick(parts, index, count, in: s)
        },
        string("regsub", [.regex, .string, .string], required: 2) { s, a, _ in
            guard case .regex(let regex) = a[0] else { return nil }
            return RegexReplace.substitute(s, regex: regex, template: a[1].string ?? "", global: (a.count > 2 ? a[2].string ?? "" : "").contains("g"))
        },
        string("ltrim", [.string], required: 1) { s, a, _ in
            let set = Set(a[0].string ?? ""); return String(s.drop { set.contains($0) })
        },
        string("rtrim", [.string], required: 1) { s, a, _ in
            let set = Set(a[0].string ?? ""); var t = Substring(s)
            while let l = t.last, set.contains(l) { t = t.dropLast() }
            return String(t)
        },
        string("concat", [.string, .variable, .string]) { s, a, c in
            var out = s + (a.first?.string ?? "")
            if a.count > 1, case .variable(let name) = a[1], let v = c.variable(name)?.asString { out += v }
            if a.count > 2 { out += a[2].string ?? "" }
            return out
        },
        ConverterDefinition("strcmp", [.variable], required: 1, .string, .int) { v, a, c in
            guard case .variable(let name) = a[0], let other = c.variable(name)?.asString, let s = v.asString else { return nil }
            return .int(s < other ? -1 : s == other ? 0 : 1)
        },
        string("host_only") { s, _, _ in
            if s.first == "[" { return s.firstIndex(of: "]").map { String(s[...$0]) } ?? s }
            return String(s.prefix { $0 != ":" })
        },
        ConverterDefinition("port_only", .string, .int) { v, _, _ in
            guard let s = v.asString else { return nil }
            let afterBracket = s.first == "[" ? s.firstIndex(of: "]").map { s[s.index(after: $0)...] } ?? "" : Substring(s)
            guard let colon = afterBracket.lastIndex(of: ":") else { return .int(0) }
            return .int(Int64(afterBracket[afterBracket.index(after: colon)...]) ?? 0)
        },
        // `+` is a space in the query string; with a non-zero argument, in the path too.
        string("url_dec", [.int]) { s, a, _ in URLDecode.decode(s, plusAsSpace: (a.first?.int ?? 0) != 0) },
        // `url_enc([query])`: the one encoding HAProxy has.
        string("url_enc", [.choice(["query"], message: "Unexpected encode type. Allowed value is 'query'.")]) { s, _, _ in s.addingPercentEncoding(withAllowedCharacters: .urlQueryAllowed.subtracting(CharacterSet(charactersIn: "&=+?"))) },
        string("json", [.string]) { s, _, _ in JSONEscape.escape(s) },
        // Bytes in, as HAProxy declares it: a binary sample (a digest) is encoded as it is.
        ConverterDefinition("base64", .binary, .string) { v, _, _ in v.asBinary.map { .string(Data($0).base64EncodedString()) } },
        ConverterDefinition("b64dec", .string, .binary) { v, _, _ in
            v.asString.flatMap { Base64.decode($0) }.map { .binary($0) }
        },
        ConverterDefinition("hex", .binary, .string) { v, _, _ in
            v.asBinary.map { .string(Hex.upper($0)) }
        },
        ConverterDefinition("hex2i", .string, .int) { v, _, _ in v.asString.flatMap { Int64($0, radix: 16) }.map { .int($0) } },
        // `ipmask(<mask4>[,<mask6>])`: prefix lengths or masks (`255.255.255.0`, `ffff:ffff::`),
        // applied bit by bit. An IPv4-mapped address is masked as IPv4; another IPv6 address
        // without a mask6 gives no sample (as in HAProxy).
        ConverterDefinition("ipmask", [.ipv4Mask, .ipv6Mask], required: 1, .address, .address) { v, a, _ in
            let mask4 = UInt32(truncatingIfNeeded: a[0].int ?? 0xffff_ffff)
            switch v {
            case .ipv4(let addr):
                return .ipv4(addr & mask4)
            case .ipv6(let addr):
                if let v4 = addr.mappedIPv4 { return .ipv4(v4 & mask4) }
                guard a.count > 1, case .ipv6(let mask) = a[1] else { return nil }
                return .ipv6(IPv6Address(high: addr.high & mask.high, low: addr.low & mask.low))
            default: return nil
            }
        },
        ConverterDefinition("set-var", [.variable], required: 1, .any, .any) { v, a, c in
            if case .variable(let name) = a[0] { c.setVariable(name, v) }
            return v
        },
        ConverterDefinition("unset-var", [.variable], required: 1, .any, .any) { v, a, c in
            if case .variable(let name) = a[0] { c.setVariable(name, nil) }
            return v
        },
        ConverterDefinition("debug", [.string, .string], .any, .any) { v, _, _ in v },
        ConverterDefinition("bool", .int, .bool) { v, _, _ in v.asInt.map { .bool($0 != 0) } },
        ConverterDefinition("not", .int, .bool) { v, _, _ in v.asInt.map { .bool($0 == 0) } },
        ConverterDefinition("odd", .int, .bool) { v, _, _ in v.asInt.map { .bool($0 & 1 == 1) } },
        ConverterDefinition("even", .int, .bool) { v, _, _ in v.asInt.map { .bool($0 & 1 == 0) } },
    ]

    /// `field`/`word`: `count` parts from the `index`-th (counted from the end when negative,
    /// the range then ending at that part; 0: to the end, or to the start), as the span of
    /// `text` they cover, delimiters included as they were. A part that does not exist is no
    /// sample (an empty one is an empty string).
    static func pick(_ parts: [Substring], _ index: Int, _ count: Int, in text: String) -> String? {
        guard index != 0, !parts.isEmpty else { return nil }
        let first: Int, last: Int
        if index > 0 {
            first = index - 1
            guard first < parts.count else { return nil }
            last = count <= 0 ? parts.count - 1 : min(parts.count - 1, first + count - 1)
        } else {
            last = parts.count + index
            guard last >= 0 else { return nil }
            first = count <= 0 ? 0 : max(0, last - count + 1)
        }
        return String(text[parts[first].startIndex..<parts[last].endIndex])
    }

    static func arithmetic(_ name: String, _ op: @escaping @Sendable (Int64, Int64) -> Int64?) -> ConverterDefinition {
        ConverterDefinition(name, [.intOrVariable], required: 1, .int, .int) { v, a, c in
            guard let x = v.asInt else { return nil }
            let y: Int64?
            switch a[0] {
            case .int(let n): y = n
            case .variable(let name): y = c.variable(name)?.asInt
            default: y = nil
            }
            guard let y else { return nil }
            return op(x, y).map { .int($0) }
        }
    }

    /// A date moved by an offset, saturated like the arithmetic converters (a rule never traps).
    static func shifted(_ epoch: Int64, _ offset: Int64) -> Int64 {
        saturate(epoch.addingReportingOverflow(offset), positive: offset > 0)
    }

    static func saturate(_ r: (partialValue: Int64, overflow: Bool), positive: Bool) -> Int64 {
        r.overflow ? (positive ? Int64.max : Int64.min) : r.partialValue
    }

    static let arithmetic: [ConverterDefinition] = [
        // Saturated, as HAProxy computes them.
        arithmetic("add") { saturate($0.addingReportingOverflow($1), positive: $1 > 0) },
        arithmetic("sub") { saturate($0.subtractingReportingOverflow($1), positive: $1 < 0) },
        arithmetic("mul") { saturate($0.multipliedReportingOverflow(by: $1), positive: ($0 < 0) == ($1 < 0)) },
        // No trap on bad input: a zero divisor and Int64.min / -1 give HAProxy's saturated values.
        arithmetic("div") { $1 == 0 ? Int64.max : $0.dividedReportingOverflow(by: $1).overflow ? Int64.max : $0 / $1 },
        arithmetic("mod") { $1 == 0 ? 0 : $0.remainderReportingOverflow(dividingBy: $1).overflow ? 0 : $0 % $1 },
        arithmetic("and") { $0 & $1 },
        arithmetic("or") { $0 | $1 },
        arithmetic("xor") { $0 ^ $1 },
        ConverterDefinition("neg", .int, .int) { v, _, _ in v.asInt.map { .int($0 == Int64.min ? Int64.max : -$0) } },
        ConverterDefinition("cpl", .int, .int) { v, _, _ in v.asInt.map { .int(~$0) } },
    ]

    static func hash(_ name: String, _ f: @escaping @Sendable ([UInt8]) -> UInt32) -> ConverterDefinition {
        ConverterDefinition(name, [.int], .binary, .int) { v, a, _ in
            guard let b = v.asBinary else { return nil }
            var h = f(b)
            if let avalanche = a.first?.int, avalanche != 0 { h = Hashes.fullAvalanche(h) }
            return .int(Int64(h))
        }
    }

    static let hashes: [ConverterDefinition] = [
        hash("crc32") { Hashes.crc32($0) },
        hash("djb2") { Hashes.djb2($0) },
        hash("sdbm") { Hashes.sdbm($0) },
        hash("wt6") { Hashes.wt6($0) },
        hash("crc32c") { Hashes.crc32c($0) },
        // The xxHash family: the optional argument is a seed. xxh32 is unsigned, the 64-bit
        // ones signed (the bits as they come), as in HAProxy.
        ConverterDefinition("xxh32", [.int], .binary, .int) { v, a, _ in
            v.asBinary.map { .int(Int64(XXH64.hash32($0, seed: UInt32(truncatingIfNeeded: a.first?.int ?? 0)))) }
        },
        ConverterDefinition("xxh64", [.int], .binary, .int) { v, a, _ in
            v.asBinary.map { .int(Int64(bitPattern: XXH64.hash($0, seed: UInt64(bitPattern: a.first?.int ?? 0)))) }
        },
        ConverterDefinition("xxh3", [.int], .binary, .int) { v, a, _ in
            v.asBinary.map { .int(Int64(bitPattern: XXH64.hash3($0, seed: UInt64(bitPattern: a.first?.int ?? 0)))) }
        },
    ]

    /// `map`, `map_<match>` and `map_<match>_<output>`: look the sample up in a map file.
    static let mapConverters: [ConverterDefinition] = {
        var out: [ConverterDefinition] = []
        let methods: [(String, MatchMethod)] = [
            ("str", .str), ("beg", .beg), ("sub", .sub), ("dir", .dir), ("dom", .dom), ("end", .end), ("reg", .reg),
            ("ip", .ip), ("int", .int),
        ]
        for (word, method) in methods {
            for (suffix, output) in [("", SampleType.string), ("_str", .string), ("_int", .int), ("_ip", .address)] {
                let name = "map_" + word + suffix
                out.append(mapConverter(name, method: method, output: output))
            }
        }
        out.append(mapConverter("map", method: .str, output: .string))
        // `map_regm`: a regex map whose values may name the match's groups (`\1`).
        out.append(ConverterDefinition("map_regm", [.map(.reg, output: "str"), .string], required: 1, .string, .string) { v, a, _ in
            guard case .map(let set) = a[0], let subject = v.asString else { return nil }
            let patterns = set.patterns
            guard let (index, groups) = patterns.firstRegexMatch(subject) else { return a.count > 1 ? a[1].string.map { .string($0) } : nil }
            let template = patterns.entries[index].value ?? ""
            return .string(String(decoding: RegexReplace.expand(template, groups: groups, in: Array(subject.utf8)), as: UTF8.self))
        })
        return out
    }()

    static func mapConverter(_ name: String, method: MatchMethod, output: SampleType) -> ConverterDefinition {
        ConverterDefinition(name, [.map(method, output: output == .int ? "int" : output == .address ? "ip" : "str"), .string], required: 1, method.sampleType == .address ? .address : (method == .int ? .int : .string), output) { v, a, _ in
            guard case .map(let set) = a[0] else { return nil }
            let found = set.patterns.lookup(v) ?? (a.count > 1 ? a[1].string : nil)
            guard let found else { return nil }
            switch output {
            case .int: return Int64(found).map { .int($0) }
            case .address: return SampleValue.string(found).cast(to: .address)
            default: return .string(found)
            }
        }
    }

    /// Binary samples shown as text (`be2dec`, `be2hex`, `ub64enc`), digests and HMACs through
    /// OpenSSL, and the converters that build strings from a condition or variables.
    static let binaryConverters: [ConverterDefinition] = [
        // `be2dec(<separator>,<chunk_size>[,<truncate>])`: one unsigned big-endian number per
        // chunk; with truncate, a last partial chunk is left out.
        ConverterDefinition("be2dec", [.string, .int, .int], required: 1, .binary, .string, check: { a in
            let chunk = a.count > 1 ? a[1].int ?? 0 : 0
            if chunk <= 0 || chunk > 8 { return "chunk_size out of [1..8] range (\(chunk))" }
            return truncateProblem(a)
        }) { v, a, _ in
            guard let bytes = v.asBinary else { return nil }
            let parts = chunks(bytes, size: Int(a[1].int ?? 1), truncate: (a.count > 2 ? a[2].int ?? 0 : 0) != 0)
            return .string(parts.map { String($0.reduce(UInt64(0)) { $0 << 8 | UInt64($1) }) }.joined(separator: a[0].string ?? ""))
        },
        // `be2hex([<separator>][,<chunk_size>][,<truncate>])`: uppercase hex digits, the
        // separator between chunks.
        ConverterDefinition("be2hex", [.string, .int, .int], .binary, .string, check: { a in
            let separator = a.first?.string ?? "", chunk = a.count > 1 ? a[1].int ?? 0 : 0
            let truncate = a.count > 2 ? a[2].int ?? 0 : 0
            if chunk <= 0, !separator.isEmpty || truncate != 0 { return "chunk_size needs to be positive (\(chunk))" }
            return truncateProblem(a)
        }) { v, a, _ in
            guard let bytes = v.asBinary else { return nil }
            let separator = a.first?.string ?? ""
            let chunk = a.count > 1 ? Int(a[1].int ?? 0) : 0
            let truncate = (a.count > 2 ? a[2].int ?? 0 : 0) != 0
            let parts = chunk > 0 && (!separator.isEmpty || truncate) ? chunks(bytes, size: chunk, truncate: truncate) : [bytes[...]]
            return .string(parts.map { Hex.upper($0) }.joined(separator: separator))
        },
        ConverterDefinition("ub64enc", .binary, .string) { v, _, _ in
            v.asBinary.map { .string(Base64URL.encode($0)) }
        },
        ConverterDefinition("ub64dec", .string, .binary) { v, _, _ in
            v.asString.flatMap { Base64URL.decode($0) }.map { .binary($0) }
        },
        ConverterDefinition("sha1", .binary, .binary) { v, _, _ in
            v.asBinary.flatMap { Digests.digest("sha1", $0) }.map { .binary($0) }
        },
        // `sha2([<bits>])`: SHA-224, -256 (the default), -384 or -512.
        ConverterDefinition("sha2", [.int], .binary, .binary, check: { a in
            let bits = a.first?.int ?? 256
            return [224, 256, 384, 512].contains(bits) ? nil : "Unsupported number of bits: '\(bits)'"
        }) { v, a, _ in
            v.asBinary.flatMap { Digests.digest("sha\(a.first?.int ?? 256)", $0) }.map { .binary($0) }
        },
        ConverterDefinition("digest", [.string], required: 1, .binary, .binary, check: { a in
            Digests.isKnown(a[0].string ?? "") ? nil : "algorithm must be a valid OpenSSL message digest name."
        }) { v, a, _ in
            v.asBinary.flatMap { Digests.digest(a[0].string ?? "", $0) }.map { .binary($0) }
        },
        // `hmac(<algorithm>,<key>)`: the key is base64, as a constant or in a variable.
        ConverterDefinition("hmac", [.string, .stringOrVariable], required: 2, .binary, .binary, check: { a in
            guard Digests.isKnown(a[0].string ?? "") else { return "algorithm must be a valid OpenSSL message digest name." }
            if case .string(let key) = a[1], !key.isEmpty, key.utf8.count % 4 != 0 || Base64.decode(key) == nil {
                return "failed to parse key : argument needs to be base64 encoded, and can either be a string or a variable"
            }
            return nil
        }) { v, a, c in
            guard let data = v.asBinary else { return nil }
            let key: [UInt8]?
            switch a[1] {
            case .variable(let name): key = c.variable(name)?.asString.flatMap { Base64.decode($0) }
            case .string(let text): key = text.isEmpty ? [] : Base64.decode(text)
            default: key = nil
            }
            return key.flatMap { Digests.hmac(a[0].string ?? "", key: $0, data) }.map { .binary($0) }
        },
        // `secure_memcmp(<var>)`: the sample and the variable's bytes, compared in constant time.
        ConverterDefinition("secure_memcmp", [.stringOrVariable], required: 1, .binary, .bool, check: { a in
            guard case .string(let text) = a[0] else { return nil }
            return text.isEmpty ? "missing variable name" : "failed to register variable name '\(text)'"
        }) { v, a, c in
            guard case .variable(let name) = a[0], let other = c.variable(name)?.asBinary, let bytes = v.asBinary else { return nil }
            return .bool(Digests.constantTimeEqual(bytes, other))
        },
        // `iif(<true>,<false>)`: one of two strings, after a boolean.
        ConverterDefinition("iif", [.string, .string], required: 2, .bool, .string) { v, a, _ in
            v.asBool.map { .string(($0 ? a[0].string : a[1].string) ?? "") }
        },
        // `add_item(<delim>[,<var>][,<suffix>])`: the variable's text and the suffix appended,
        // the delimiter first when the sample is not empty and something follows it.
        ConverterDefinition("add_item", [.string, .stringOrVariable, .string], required: 2, .string, .string, check: { a in
            if case .string(let name) = a[1], !name.isEmpty { return "failed to register variable name '\(name)'" }
            let hasVariable: Bool
            if case .variable = a[1] { hasVariable = true } else { hasVariable = false }
            return hasVariable || !(a.count > 2 ? a[2].string ?? "" : "").isEmpty ? nil : "one of the optional arguments has to be nonempty"
        }) { v, a, c in
            guard var out = v.asString else { return nil }
            var value: String? = nil
            if case .variable(let name) = a[1] { value = c.variable(name)?.asString }
            let suffix = a.count > 2 ? a[2].string ?? "" : ""
            if !out.isEmpty, !(value ?? "").isEmpty || !suffix.isEmpty { out += a[0].string ?? "" }
            out += (value ?? "") + suffix
            return .string(out)
        },
    ]

    /// `be2dec`/`be2hex`: truncate is a flag.
    private static func truncateProblem(_ a: [SampleArgument]) -> String? {
        let truncate = a.count > 2 ? a[2].int ?? 0 : 0
        return truncate == 0 || truncate == 1 ? nil : "Unsupported truncate value (\(truncate))"
    }

    /// `bytes` cut into chunks of `size`; a last shorter chunk is left out when `truncate`.
    private static func chunks(_ bytes: [UInt8], size: Int, truncate: Bool) -> [ArraySlice<UInt8>] {
        stride(from: 0, to: bytes.count, by: size).compactMap { start in
            let end = min(start + size, bytes.count)
            return truncate && end - start < size ? nil : bytes[start..<end]
        }
    }

    static let misc: [ConverterDefinition] = [
        ConverterDefinition("ltime", [.string, .int], required: 1, .int, .string) { v, a, _ in
            v.asInt.map { .string(TimeFormat.format(epoch: shifted($0, a.count > 1 ? a[1].int ?? 0 : 0), format: a[0].string ?? "", utc: false)) }
        },
        ConverterDefinition("utime", [.string, .int], required: 1, .int, .string) { v, a, _ in
            v.asInt.map { .string(TimeFormat.format(epoch: shifted($0, a.count > 1 ? a[1].int ?? 0 : 0), format: a[0].string ?? "", utc: true)) }
        },
        ConverterDefinition("http_date", [.int, .string], .int, .string) { v, a, _ in
            v.asInt.map { .string(TimeFormat.format(epoch: shifted($0, a.first?.int ?? 0), format: "%a, %d %b %Y %H:%M:%S GMT", utc: true)) }
        },
    ]
}

/// `%`-decoding of URL components.
public enum URLDecode {
    public static func decode(_ s: String, plusAsSpace: Bool) -> String? {
        var out: [UInt8] = []
        let b = Array(s.utf8)
        var i = 0
        var inQuery = false
        while i < b.count {
            if b[i] == UInt8(ascii: "?") { inQuery = true }
            if b[i] == UInt8(ascii: "%") {
                guard i + 2 < b.count, let h = Hex.digit(b[i + 1]), let l = Hex.digit(b[i + 2]) else { return nil }
                out.append(h << 4 | l)
                i += 3
            } else {
                out.append((plusAsSpace || inQuery) && b[i] == UInt8(ascii: "+") ? 32 : b[i])
                i += 1
            }
        }
        return String(decoding: out, as: UTF8.self)
    }
}

enum JSONEscape {
    static func escape(_ s: String) -> String {
        var out = ""
        for c in s.unicodeScalars {
            switch c {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "/": out += "\\/"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            case "\u{08}": out += "\\b"
            case "\u{0C}": out += "\\f"
            default:
                if c.value < 0x20 { out += String(format: "\\u%04x", c.value) } else { out.unicodeScalars.append(c) }
            }
        }
        return out
    }
}

/// `regsub`, `replace-path`, `replace-header`: substitutions with `\1`..`\9` references.
public enum RegexReplace {
    /// Replaces the first match (every match with `global`); nil when the template is bad.
    public static func substitute(_ s: String, regex: Regex, template: String, global: Bool) -> String {
        let bytes = Array(s.utf8)
        var out: [UInt8] = []
        var position = 0
        while position <= bytes.count, let groups = regex.firstMatch(in: s, from: position), let whole = groups[0] {
            out.append(contentsOf: bytes[position..<whole.lowerBound])
            out.append(contentsOf: expand(template, groups: groups, in: bytes))
            if whole.isEmpty {
                if whole.upperBound < bytes.count { out.append(bytes[whole.upperBound]) }
                position = whole.upperBound + 1
            } else {
                position = whole.upperBound
            }
            if !global { break }
        }
        if position < bytes.count { out.append(contentsOf: bytes[position...]) }
        return String(decoding: out, as: UTF8.self)
    }

    /// The template with `\N` replaced by capture N.
    public static func expand(_ template: String, groups: [Range<Int>?], in bytes: [UInt8]) -> [UInt8] {
        var out: [UInt8] = []
        let t = Array(template.utf8)
        var i = 0
        while i < t.count {
            if t[i] == UInt8(ascii: "\\"), i + 1 < t.count, t[i + 1] >= 48, t[i + 1] <= 57 {
                let n = Int(t[i + 1] - 48)
                if n < groups.count, let r = groups[n] { out.append(contentsOf: bytes[r]) }
                i += 2
            } else {
                out.append(t[i])
                i += 1
            }
        }
        return out
    }

    /// `replace-header`, `replace-path`...: when the regex matches, the whole subject becomes
    /// the template with `\N` replaced by the captures; nil when it does not match.
    public static func replaceWhole(_ s: String, regex: Regex, template: String) -> String? {
        guard let groups = regex.firstMatch(in: s), groups.first.flatMap({ $0 }) != nil else { return nil }
        return String(decoding: expand(template, groups: groups, in: Array(s.utf8)), as: UTF8.self)
    }
}

/// strftime through Foundation's C library.
enum TimeFormat {
    static func format(epoch: Int64, format: String, utc: Bool) -> String {
        var t = time_t(epoch)
        var tmValue = tm()
        if utc { gmtime_r(&t, &tmValue) } else { localtime_r(&t, &tmValue) }
        var buffer = [CChar](repeating: 0, count: 256)
        let n = strftime(&buffer, buffer.count, format, &tmValue)
        return String(decoding: buffer[0..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }
}
