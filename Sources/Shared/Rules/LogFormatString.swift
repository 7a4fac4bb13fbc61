import Foundation

/// What a log line knows of the stream it describes (timers, bytes, termination state,
/// captures...), for the `%` variables of a log-format string.
public protocol LogRecord {
    /// The text of a variable; nil prints `-`.
    func value(_ variable: LogFormatString.Variable) -> LogFormatString.Value?
    /// The declared header captures of one side (nil when none is declared).
    func captures(response: Bool) -> [String?]?
}

/// A log-format string (`log-format`, `unique-id-format`, and the arguments of rules:
/// `set-header X %[src]`, `lf-string`): text, `%[sample]` expressions and `%` variables with
/// their `%{+Q,+X,+E}` options, compiled once.
///
/// Rules and logs render it differently, as in HAProxy: in a log line a run of blanks is one
/// separator (printed once, and not again after a field that printed nothing), a missing value
/// prints `-` and `+Q` quotes text; in a rule argument the text stays as written and a missing
/// sample is empty.
public final class LogFormatString: Sendable, CustomStringConvertible {
    /// HAProxy 2.6's log-format variables.
    public enum Variable: String, Sendable, CaseIterable {
        case o, B, CC, CS, H, HM, HP, HQ, HU, HV, ID, ST, T, Ta, Tc, Td, Th, Ti, Tl, TR, Tr, Ts, Tt, Tu, Tw, Tq, U
        case ac, b, bc, bi, bp, bq, ci, cp, f, fc, fi, fp, ft, hr, hrl, hs, hsl, lc, ms, pid, r, rc, rt, s, sc, si, sp, sq
        case sslc, sslv, t, tr, trg, trl, ts, tsc

        /// Whether `+X` prints it in hexadecimal (addresses, ports, counters, the timestamp).
        var printsHex: Bool {
            switch self {
            case .ci, .cp, .fi, .fp, .bi, .bp, .si, .sp, .Ts, .rt, .lc, .pid: return true
            default: return false
            }
        }

        /// Whether the value is text (quoted by `+Q`, escaped by `+E`) rather than a number, a
        /// date or a termination state.
        var isText: Bool {
            switch self {
            case .B, .ST, .Ta, .Tc, .Td, .Th, .Ti, .TR, .Tr, .Ts, .Tt, .Tu, .Tw, .Tq, .U, .ac, .bc, .bp, .bq, .cp, .fc, .fp,
                 .lc, .ms, .pid, .rc, .rt, .sc, .sp, .sq, .t, .tr, .trg, .trl, .T, .Tl, .ts, .tsc:
                return false
            default:
                return true
            }
        }
    }

    /// A variable's value: text, a number (`+X` prints it in hexadecimal) or an IPv4 address.
    public enum Value: Sendable {
        case text(String)
        case number(Int64)
        case ipv4(UInt32, String)

        var plain: String {
            switch self {
            case .text(let s): return s
            case .number(let n): return String(n)
            case .ipv4(_, let s): return s
            }
        }

        func hex(width: Int) -> String {
            switch self {
            case .text(let s): return s
            case .number(let n):
                let digits = String(UInt64(bitPattern: n), radix: 16, uppercase: true)
                return digits.count >= width ? digits : String(repeating: "0", count: width - digits.count) + digits
            case .ipv4(let v, _):
                let digits = String(v, radix: 16, uppercase: true)
                return String(repeating: "0", count: 8 - digits.count) + digits
            }
        }
    }

    /// `%{+Q}` quote, `%{+X}` hexadecimal, `%{+E}` escape `"`, `\` and `]`.
    public struct Options: OptionSet, Sendable {
        public let rawValue: Int
        public init(rawValue: Int) { self.rawValue = rawValue }
        public static let quote = Options(rawValue: 1)
        public static let hex = Options(rawValue: 2)
        public static let escape = Options(rawValue: 4)
    }

    public enum Segment: Sendable {
        case literal(String)
        /// A run of blanks between fields.
        case separator(String)
        case sample(SampleExpression, Options)
        case variable(Variable, Options)
    }

    public let segments: [Segment]
    public let source: String
    public var description: String { source }

    /// A string without any `%`: the value is fixed.
    public var constant: String? {
        if segments.isEmpty { return "" }
        var text = ""
        for segment in segments {
            switch segment {
            case .literal(let s), .separator(let s): text += s
            default: return nil
            }
        }
        return text
    }

    public init(literal: String) {
        segments = literal.isEmpty ? [] : [.literal(literal)]
        source = literal
        (fixed, soleSample) = Self.shortcuts(segments)
    }

    /// The common forms of a rule argument, kept apart so that evaluating one reads a stored
    /// property instead of copying a segment (and its references) out of the list: the text
    /// of a constant, or the one unquoted sample (`%[src]`).
    private let fixed: String?
    private let soleSample: SampleExpression?

    private static func shortcuts(_ segments: [Segment]) -> (String?, SampleExpression?) {
        guard segments.count == 1 else { return (segments.isEmpty ? "" : nil, nil) }
        switch segments[0] {
        case .literal(let s): return (s, nil)
        case .sample(let expression, let options) where !options.contains(.quote): return (nil, expression)
        default: return (nil, nil)
        }
    }

    public struct Failure: Error, Sendable {
        public var message: String
    }

    public static func parse(_ text: String, context: RuleCompilationContext) throws(Failure) -> LogFormatString {
        var segments: [Segment] = []
        var literal = ""
        var blanks = ""
        // `%o`: options for every variable that follows.
        var defaults: Options = []
        func flush() {
            if !literal.isEmpty { segments.append(.literal(literal)); literal = "" }
            if !blanks.isEmpty { segments.append(.separator(blanks)); blanks = "" }
        }
        var i = text.startIndex
        while i < text.endIndex {
            let c = text[i]
            if c == " " || c == "\t" {
                if !literal.isEmpty { segments.append(.literal(literal)); literal = "" }
                blanks.append(c)
                i = text.index(after: i)
                continue
            }
            if !blanks.isEmpty { segments.append(.separator(blanks)); blanks = "" }
            guard c == "%" else {
                literal.append(c)
                i = text.index(after: i)
                continue
            }
            var j = text.index(after: i)
            guard j < text.endIndex else {
                throw Failure(message: "unexpected end of string after '%' in log-format string '\(text)'")
            }
            if text[j] == "%" {
                literal.append("%")
                i = text.index(after: j)
                continue
            }
            var options = defaults
            if text[j] == "{" {
                guard let close = text[j...].firstIndex(of: "}") else {
                    let last = text[text.index(after: j)...].split(separator: ",").last.map(String.init) ?? ""
                    throw Failure(message: "truncated line after '\(last)'")
                }
                for item in text[text.index(after: j)..<close].split(separator: ",") {
                    let flag: Options
                    switch item.dropFirst() {
                    case "Q": flag = .quote
                    case "X": flag = .hex
                    case "E": flag = .escape
                    default: flag = []
                    }
                    if item.hasPrefix("-") { options.remove(flag) } else { options.insert(flag) }
                }
                j = text.index(after: close)
            }
            flush()
            if j < text.endIndex, text[j] == "[" {
                let start = text.index(after: j)
                let expression: SampleExpression
                let rest: Substring
                do {
                    (expression, rest) = try SampleExpressionParser.parsePrefix(text[start...], context: context)
                } catch {
                    throw Failure(message: "failed to parse sample expression <\(text[start...])> : \(error.message)")
                }
                guard rest.first == "]" else {
                    throw Failure(message: "missing ']' after sample expression in log-format string '\(text)'")
                }
                segments.append(.sample(expression, options))
                i = rest.index(after: rest.startIndex)
                continue
            }
            var name = ""
            var k = j
            while k < text.endIndex, text[k].isLetter {
                name.append(text[k])
                k = text.index(after: k)
            }
            // The longest known variable name that starts here.
            var matched: Variable? = nil
            var length = name.count
            while length > 0 {
                if let v = Variable(rawValue: String(name.prefix(length))) { matched = v; break }
                length -= 1
            }
            guard let matched else {
                throw Failure(message: "no such format variable '\(name)'. If you wanted to emit the '%' character verbatim, you need to use '%%'")
            }
            if matched == .o {
                defaults = options
            } else {
                segments.append(.variable(matched, options))
            }
            i = text.index(j, offsetBy: length)
        }
        flush()
        return LogFormatString(segments: segments, source: text)
    }

    init(segments: [Segment], source: String) {
        self.segments = segments
        self.source = source
        (fixed, soleSample) = Self.shortcuts(segments)
    }

    /// Every sample expression used (for the stage check).
    var expressions: [SampleExpression] {
        segments.compactMap { if case .sample(let e, _) = $0 { return e } else { return nil } }
    }

    /// The variables used.
    public var variables: [Variable] {
        segments.compactMap { if case .variable(let v, _) = $0 { return v } else { return nil } }
    }

    // MARK: - Rule arguments

    public func evaluate(_ context: SampleContext) -> String {
        // The common forms: a constant, or one sample, without building a string.
        if let fixed { return fixed }
        if let soleSample { return soleSample.evaluate(context)?.asString ?? "" }
        var out = ""
        for segment in segments {
            switch segment {
            case .literal(let s), .separator(let s):
                out += s
            case .sample(let expression, let options):
                // In rule arguments a missing sample is an empty string, quoted or not (as in
                // HAProxy; logs print "-" instead).
                if let v = expression.evaluate(context)?.asString {
                    out += options.contains(.quote) ? "\"\(v)\"" : v
                }
            case .variable(let v, let options):
                let text = Self.contextValue(v, context)?.plain ?? "-"
                out += options.contains(.quote) && v.isText ? "\"\(text)\"" : text
            }
        }
        return out
    }

    // MARK: - Log lines

    /// The log line: variables from `record` (else from the context), samples from `context`.
    public func render(_ record: LogRecord, context: SampleContext?) -> String {
        var out = ""
        var afterSeparator = true
        for segment in segments {
            switch segment {
            case .literal(let s):
                out += s
                afterSeparator = false
            case .separator:
                if !afterSeparator { out += " " }
                afterSeparator = true
            case .sample(let expression, let options):
                if let v = context.flatMap({ expression.evaluate($0) })?.asString {
                    Self.append(.text(v), isText: true, options, to: &out)
                } else {
                    out += options.contains(.quote) ? "\"\"" : "-"
                }
                afterSeparator = false
            case .variable(let v, let options):
                switch v {
                case .hr, .hs:
                    guard let captures = record.captures(response: v == .hs) else { continue }
                    let inner = "{" + captures.map { Self.escaped($0 ?? "", options) }.joined(separator: "|") + "}"
                    out += options.contains(.quote) ? "\"\(inner)\"" : inner
                case .hrl, .hsl:
                    guard let captures = record.captures(response: v == .hsl) else { continue }
                    out += captures.map { value in
                        guard let value else { return "-" }
                        let text = Self.escaped(value, options)
                        return options.contains(.quote) ? "\"\(text)\"" : text
                    }.joined(separator: " ")
                default:
                    if let value = record.value(v) ?? context.flatMap({ Self.contextValue(v, $0) }) {
                        Self.append(value, isText: v.isText, v.printsHex ? options : options.subtracting(.hex),
                                    width: v == .ci || v == .fi || v == .bi || v == .si || v == .Ts ? 8 : 4, to: &out)
                    } else {
                        out += options.contains(.quote) && v.isText ? "\"\"" : "-"
                    }
                }
                afterSeparator = false
            }
        }
        return out
    }

    private static func append(_ value: Value, isText: Bool, _ options: Options, width: Int = 8, to out: inout String) {
        if options.contains(.hex), case .text = value {} else if options.contains(.hex) {
            out += value.hex(width: width)
            return
        }
        let text = escaped(value.plain, options)
        out += isText && options.contains(.quote) ? "\"\(text)\"" : text
    }

    private static func escaped(_ text: String, _ options: Options) -> String {
        guard options.contains(.escape), text.contains(where: { $0 == "\"" || $0 == "\\" || $0 == "]" }) else { return text }
        var out = ""
        for c in text {
            if c == "\"" || c == "\\" || c == "]" { out.append("\\") }
            out.append(c)
        }
        return out
    }

    /// The variables a sample context knows (rule arguments, and log lines for what the record
    /// leaves out).
    static func contextValue(_ v: Variable, _ c: SampleContext) -> Value? {
        switch v {
        case .ci: return c.clientAddress.map(address)
        case .cp: return c.clientPort.map { .number(Int64($0)) }
        case .fi: return c.localAddress.map(address)
        case .fp: return c.localPort.map { .number(Int64($0)) }
        case .f, .ft: return .text(c.frontendName)
        case .b: return c.backendName.map { .text($0) }
        case .s: return c.serverName.map { .text($0) }
        case .ST: return c.responseStatus.map { .number(Int64($0)) }
        case .HM: return c.requestMethod.map { .text($0) }
        case .HU: return c.requestTarget.map { .text($0) }
        case .HP: return c.requestTarget.map { .text(URLParts.path($0).map(String.init) ?? $0) }
        case .HQ: return .text(c.requestTarget.flatMap { URLParts.query($0) }.map { "?" + $0 } ?? "")
        case .HV: return c.requestVersion.map { .text("HTTP/" + $0) }
        case .r:
            guard let m = c.requestMethod, let t = c.requestTarget else { return nil }
            return .text("\(m) \(t) HTTP/\(c.requestVersion ?? "1.1")")
        case .H: return .text(LogDate.hostname)
        case .pid: return .number(Int64(ProcessInfo.processInfo.processIdentifier))
        case .Ts: return .number(c.epochSeconds)
        default: return nil
        }
    }

    private static func address(_ value: SampleValue) -> Value {
        if case .ipv4(let v) = value { return .ipv4(v, value.asString ?? "-") }
        return .text(value.asString ?? "-")
    }
}
