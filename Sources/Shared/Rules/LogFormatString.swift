import Foundation

/// A log-format string as rule arguments use it (`set-header X %[src]`, `lf-string`): text,
/// `%[sample]` expressions and `%` variables, compiled once. The log-format lines of
/// `log-format` share the compiler.
public final class LogFormatString: Sendable, CustomStringConvertible {
    public enum Variable: String, Sendable, CaseIterable {
        case ci, cp, fi, fp, f, ft, b, s, ST, r, H, pid, ID, t, T, Ts, ms, HM, HU, HP, HQ, HV, bi, bp, si, sp, fc, bc
    }

    public enum Segment: Sendable {
        case literal(String)
        case sample(SampleExpression, quoted: Bool)
        case variable(Variable, quoted: Bool)
    }

    public let segments: [Segment]
    public let source: String
    public var description: String { source }

    /// A string without any `%`: the value is fixed.
    public var constant: String? {
        if segments.isEmpty { return "" }
        if segments.count == 1, case .literal(let s) = segments[0] { return s }
        return nil
    }

    public init(literal: String) {
        segments = literal.isEmpty ? [] : [.literal(literal)]
        source = literal
    }

    public struct Failure: Error, Sendable {
        public var message: String
    }

    public static func parse(_ text: String, context: RuleCompilationContext) throws(Failure) -> LogFormatString {
        var segments: [Segment] = []
        var literal = ""
        var i = text.startIndex
        func flush() {
            if !literal.isEmpty { segments.append(.literal(literal)); literal = "" }
        }
        while i < text.endIndex {
            let c = text[i]
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
            var quoted = false
            if text[j] == "{" {
                guard let close = text[j...].firstIndex(of: "}") else {
                    throw Failure(message: "missing '}' in log-format string '\(text)'")
                }
                let options = text[text.index(after: j)..<close]
                quoted = options.split(separator: ",").contains("+Q")
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
                segments.append(.sample(expression, quoted: quoted))
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
            segments.append(.variable(matched, quoted: quoted))
            i = text.index(j, offsetBy: length)
        }
        flush()
        return LogFormatString(segments: segments, source: text)
    }

    init(segments: [Segment], source: String) {
        self.segments = segments
        self.source = source
    }

    /// Every sample expression used (for the stage check).
    var expressions: [SampleExpression] {
        segments.compactMap { if case .sample(let e, _) = $0 { return e } else { return nil } }
    }

    public func evaluate(_ context: SampleContext) -> String {
        if segments.count == 1, case .literal(let s) = segments[0] { return s }
        var out = ""
        for segment in segments {
            switch segment {
            case .literal(let s):
                out += s
            case .sample(let expression, let quoted):
                // In rule arguments a missing sample is an empty string, quoted or not (as in
                // HAProxy; logs print "-" instead).
                if let v = expression.evaluate(context)?.asString {
                    out += quoted ? "\"\(v)\"" : v
                }
            case .variable(let v, let quoted):
                let text = Self.value(v, context) ?? "-"
                out += quoted ? "\"\(text)\"" : text
            }
        }
        return out
    }

    static func value(_ v: Variable, _ c: SampleContext) -> String? {
        switch v {
        case .ci: return c.clientAddress?.asString
        case .cp: return c.clientPort.map(String.init)
        case .fi: return c.localAddress?.asString
        case .fp: return c.localPort.map(String.init)
        case .f, .ft: return c.frontendName
        case .b: return c.backendName
        case .s: return c.serverName
        case .ST: return c.responseStatus.map(String.init)
        case .HM: return c.requestMethod
        case .HU, .HP: return c.requestTarget
        case .HQ: return c.requestTarget.flatMap { URLParts.query($0) }.map { "?" + $0 } ?? ""
        case .HV: return c.requestVersion.map { "HTTP/" + $0 }
        case .r:
            guard let m = c.requestMethod, let t = c.requestTarget else { return nil }
            return "\(m) \(t) HTTP/\(c.requestVersion ?? "1.1")"
        case .H: return ProcessInfo.processInfo.hostName
        case .pid: return String(ProcessInfo.processInfo.processIdentifier)
        case .Ts: return String(c.epochSeconds)
        case .t, .T: return String(c.epochSeconds)
        case .ms: return "000"
        case .ID, .bi, .bp, .si, .sp, .fc, .bc: return nil
        }
    }
}
