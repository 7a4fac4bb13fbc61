/// `log-format`, `log-format-sd`, `error-log-format`, `unique-id-format`, `unique-id-header`,
/// `declare capture`, `log-tag`, and the log formats of `option httplog|httpslog|tcplog`.
extension ConfigParser {
    /// HAProxy 2.6's formats of `option httplog`, `option httplog clf`, `option httpslog` and
    /// `option tcplog`, compiled by the same compiler as `log-format`.
    static let httpLogFormat = "%ci:%cp [%tr] %ft %b/%s %TR/%Tw/%Tc/%Tr/%Ta %ST %B %CC %CS %tsc %ac/%fc/%bc/%sc/%rc %sq/%bq %hr %hs %{+Q}r"
    static let httpCLFLogFormat = "%{+Q}o %{-Q}ci - - [%trg] %r %ST %B \"\" \"\" %cp %ms %ft %b %s %TR %Tw %Tc %Tr %Ta %tsc %ac %fc %bc %sc %rc %sq %bq %CC %CS %hrl %hsl"
    static let httpsLogFormat = httpLogFormat + " %[fc_err]/%[ssl_fc_err,hex]/%[ssl_c_err]/%[ssl_c_ca_err]/%[ssl_fc_is_resumed] %[ssl_fc_sni]/%sslv/%sslc"
    static let tcpLogFormat = "%ci:%cp [%t] %ft %b/%s %Tw/%Tc/%Tt %B %ts %ac/%fc/%bc/%sc/%rc %sq/%bq"

    /// A log-format argument: one word, compiled; nil after an error (reported).
    mutating func logFormatArgument(_ w: [String]) -> LogFormatString? {
        let keyword = w[0]
        guard w.count >= 2, !w[1].isEmpty else {
            parsingAlert("\(keyword) expects an argument.")
            return nil
        }
        guard w.count == 2 else {
            parsingAlert("\(keyword) expects only one argument, don't forget to escape spaces!")
            return nil
        }
        // The formats of log lines are evaluated when the stream ends (`unique-id-format`
        // while the request is processed).
        return compileLogFormat(w[1], atLogTime: ["log-format", "log-format-sd", "error-log-format"].contains(keyword))
    }

    mutating func compileLogFormat(_ text: String, atLogTime: Bool = false) -> LogFormatString? {
        let format: LogFormatString
        do {
            format = try LogFormatString.parse(text, context: ruleContext)
        } catch {
            alert("Parsing [\(file):\(lineNumber)]: failed to parse log-format : \(error.message)\(error.message.hasSuffix(".") ? "" : ".")")
            return nil
        }
        guard atLogTime else { return format }
        let available = SampleUse.available(at: .log)
        for e in format.expressions {
            guard let missing = e.fetch.uses.missingName(in: available) else { continue }
            // HAProxy shows the format from the expression to its end.
            let rest = text.range(of: "[" + e.source).map { String(text[text.index(after: $0.lowerBound)...]) } ?? e.source + "]"
            alert("Parsing [\(file):\(lineNumber)]: failed to parse log-format : sample fetch <\(rest)> may not be reliably used here because it needs '\(missing)' which is not available here.")
            return nil
        }
        return format
    }

    /// The format of `option httplog [clf]`, `option httpslog`, `option tcplog`.
    mutating func defaultLogFormat(_ kind: ProxyLogSettings.Kind) -> LogFormatString? {
        let text: String
        switch kind {
        case .http: text = Self.httpLogFormat
        case .httpCLF: text = Self.httpCLFLogFormat
        case .https: text = Self.httpsLogFormat
        case .tcp: text = Self.tcpLogFormat
        case .custom: return nil
        }
        return try? LogFormatString.parse(text, context: ruleContext)
    }

    static let loggingKeywordTable: [ProxyKeyword] = [
        ProxyKeyword(names: ["log-format"], maximumArguments: nil) { parser, w, p in
            guard let format = parser.logFormatArgument(w) else { return }
            p.logging.format = format
            p.logging.kind = .custom
            p.options.httpLog = false
            p.options.tcpLog = false
        },
        ProxyKeyword(names: ["log-format-sd"], maximumArguments: nil) { parser, w, p in
            guard let format = parser.logFormatArgument(w) else { return }
            p.logging.structuredData = format
        },
        ProxyKeyword(names: ["error-log-format"], maximumArguments: nil) { parser, w, p in
            guard let format = parser.logFormatArgument(w) else { return }
            p.logging.errorFormat = format
        },
        ProxyKeyword(names: ["unique-id-format"], maximumArguments: nil) { parser, w, p in
            guard let format = parser.logFormatArgument(w) else { return }
            p.logging.uniqueIDFormat = format
        },
        ProxyKeyword(names: ["unique-id-header"], maximumArguments: nil) { parser, w, p in
            guard w.count >= 2, !w[1].isEmpty else {
                parser.parsingAlert("unique-id-header expects an argument.")
                return
            }
            p.logging.uniqueIDHeader = w[1]
        },
        ProxyKeyword(names: ["log-tag"], maximumArguments: nil) { parser, w, p in
            guard w.count >= 2, !w[1].isEmpty else {
                parser.parsingAlert("'log-tag' expects a tag for use in syslog.")
                return
            }
            p.logging.tag = w[1]
        },
        ProxyKeyword(names: ["declare"], maximumArguments: nil) { parser, w, p in
            guard w.count >= 2, w[1] == "capture" else {
                parser.parsingAlert("'declare' only supports 'capture'.")
                return
            }
            guard w.count >= 3, w[2] == "request" || w[2] == "response" else {
                parser.parsingAlert("'declare capture' requires a direction ('request' or 'response')")
                return
            }
            guard w.count >= 5, w[3] == "len" else {
                parser.parsingAlert("'declare capture' requires a capture length ('len')")
                return
            }
            guard let n = Int(w[4]), n > 0 else {
                parser.parsingAlert("'declare capture': cannot parse the length '\(w[3])'.")
                return
            }
            if w[2] == "request" { p.rules.requestCaptures.append((nil, n)) } else { p.rules.responseCaptures.append((nil, n)) }
        },
    ]

    /// `option httplog [clf]`, `option httpslog`, `option tcplog` (and their `no` forms).
    mutating func parseLogOption(_ name: String, arguments: ArraySlice<String>, negated: Bool, _ p: inout ProxySettings) {
        switch name {
        case "httplog":
            if let extra = arguments.first, extra != "clf" {
                parsingAlert("keyword 'httplog' only supports option 'clf'.")
                return
            }
            p.options.httpLog = !negated
            p.options.tcpLog = false
            p.options.httpLogLocation = negated ? nil : here
            p.logging.kind = arguments.first == "clf" ? .httpCLF : .http
        case "httpslog":
            p.options.httpLog = !negated
            p.options.tcpLog = false
            p.options.httpLogLocation = negated ? nil : here
            p.logging.kind = .https
        default:
            if let extra = arguments.first {
                parsingAlert("'option tcplog' cannot handle unexpected argument '\(extra)'.")
                return
            }
            p.options.tcpLog = !negated
            p.options.httpLog = false
            p.logging.kind = .tcp
        }
        p.logging.format = negated ? nil : defaultLogFormat(p.logging.kind)
    }
}
