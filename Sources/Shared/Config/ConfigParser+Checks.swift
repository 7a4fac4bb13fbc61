/// `option httpchk`, `option tcp-check`, `http-check ...` and `tcp-check ...`.
extension ConfigParser {
    /// `option httpchk [<uri>] | [<method> <uri> [<version>]]`. The version may carry header
    /// lines after `\r\n`, the old way of sending a `Host`.
    mutating func parseHTTPCheckOption(_ w: [String], from i: Int, _ p: inout ProxySettings) {
        let args = Array(w.dropFirst(i + 1))
        var request = HTTPCheckRequest()
        switch args.count {
        case 0: break
        case 1: request.uri = args[0]
        default:
            request.method = args[0]
            request.uri = args[1]
            if args.count >= 3 {
                var lines = args[2].split(separator: "\r\n", omittingEmptySubsequences: false).map(String.init)
                request.version = lines.removeFirst()
                for line in lines where !line.isEmpty {
                    guard let colon = line.firstIndex(of: ":") else { continue }
                    let value = line[line.index(after: colon)...].drop { $0 == " " }
                    request.headers.append(HTTPCheckHeader(name: String(line[..<colon]), value: String(value)))
                }
            }
        }
        p.checks.httpRequest = request
        p.checks.kind = .http
    }

    mutating func parseCheckRule(_ w: [String], _ p: inout ProxySettings) {
        let http = w[0] == "http-check"
        guard w.count >= 2 else {
            parsingAlert("'\(w[0])' expects 'comment', 'connect', 'send', 'expect'\(http ? ", 'disable-on-404', 'send-state'" : ", 'send-binary'").")
            return
        }
        // The first rule of a proxy replaces the rules it inherited from `defaults`.
        if http, p.checks.inheritedHTTPSteps { p.checks.httpSteps = []; p.checks.inheritedHTTPSteps = false }
        if !http, p.checks.inheritedTCPSteps { p.checks.tcpSteps = []; p.checks.inheritedTCPSteps = false }
        let context = "'\(w[0]) \(w[1])'"
        var step: CheckStep
        switch w[1] {
        case "comment", "set-var", "unset-var", "send-state":
            return
        case "disable-on-404" where http:
            p.checks.disableOn404 = true
            return
        case "connect":
            var port: Int? = nil
            var address: String? = nil
            var sendProxy = false
            var i = 2
            while i < w.count {
                switch w[i] {
                case "default", "linger", "via-socks4":
                    i += 1
                case "port":
                    guard i + 1 < w.count, let n = Int(w[i + 1]), (1...65535).contains(n) else {
                        parsingAlert("\(context) : expects a valid port number as argument of 'port'.")
                        return
                    }
                    port = n
                    i += 2
                case "addr":
                    guard i + 1 < w.count else { parsingAlert("\(context) : 'addr' expects an address."); return }
                    address = w[i + 1]
                    i += 2
                case "send-proxy":
                    sendProxy = true
                    i += 1
                case "alpn", "sni", "proto", "comment":
                    i += 2
                case "ssl":
                    parsingAlert("\(context) : TLS is not supported by Hasp yet.")
                    return
                default:
                    parsingAlert("\(context) : unknown keyword '\(w[i])'.")
                    return
                }
            }
            step = .connect(port: port, address: address, sendProxy: sendProxy)
        case "send" where http:
            var request = HTTPCheckRequest()
            var i = 2
            while i < w.count {
                guard i + 1 < w.count else {
                    parsingAlert("\(context) : '\(w[i])' expects an argument.")
                    return
                }
                switch w[i] {
                case "meth": request.method = w[i + 1]; i += 2
                case "uri", "uri-lf": request.uri = w[i + 1]; i += 2
                case "ver": request.version = w[i + 1]; i += 2
                case "body", "body-lf": request.body = w[i + 1]; i += 2
                case "comment": i += 2
                case "hdr":
                    guard i + 2 < w.count else {
                        parsingAlert("\(context) : 'hdr' expects <name> and <value> as arguments.")
                        return
                    }
                    request.headers.append(HTTPCheckHeader(name: w[i + 1], value: w[i + 2]))
                    i += 3
                default:
                    parsingAlert("\(context) : expects 'meth', 'uri', 'ver', 'hdr' and 'body' but got '\(w[i])'.")
                    return
                }
            }
            step = .httpSend(request)
        case "send", "send-lf", "send-binary", "send-binary-lf":
            guard w.count >= 3 else {
                parsingAlert("\(context) : expects a string as argument.")
                return
            }
            if w[1].hasPrefix("send-binary") {
                guard let bytes = Self.hexBytes(w[2]) else {
                    parsingAlert("\(context) : '\(w[2])' is not a valid hexadecimal string.")
                    return
                }
                step = .send(bytes)
            } else {
                step = .send(Array(w[2].utf8))
            }
        case "expect":
            guard let expectation = parseCheckExpectation(w, http: http, context: context) else { return }
            step = .expect(expectation)
        default:
            parsingAlert("'\(w[0])' : unknown check rule '\(w[1])'; expects 'comment', 'connect', 'send', 'expect'.")
            return
        }
        if http { p.checks.httpSteps.append(step) } else { p.checks.tcpSteps.append(step) }
    }

    private mutating func parseCheckExpectation(_ w: [String], http: Bool, context: String) -> CheckExpectation? {
        var i = 2
        var negated = false
        while i < w.count {
            switch w[i] {
            case "min-recv", "comment", "ok-status", "error-status", "tout-status", "on-success", "on-error", "status-code":
                i += 2
                continue
            case "!":
                negated = true
                i += 1
                continue
            default:
                break
            }
            break
        }
        guard i + 1 < w.count else {
            parsingAlert("\(context) : expects a pattern type and a pattern.")
            return nil
        }
        let kind = w[i]
        let pattern = w[i + 1]
        let match: CheckMatch
        switch kind {
        case "status" where http:
            var ranges: [ClosedRange<Int>] = []
            for part in pattern.split(separator: ",") {
                let bounds = part.split(separator: "-", maxSplits: 1).map { Int($0) }
                guard let low = bounds.first ?? nil, let high = bounds.count == 2 ? bounds[1] : low, low <= high else {
                    parsingAlert("\(context) : invalid status range '\(part)'.")
                    return nil
                }
                ranges.append(low...high)
            }
            match = .status(ranges)
        case "rstatus" where http: match = .statusPattern(pattern)
        case "string": match = .string(pattern)
        case "rstring": match = .stringPattern(pattern)
        case "binary" where !http:
            guard let bytes = Self.hexBytes(pattern) else {
                parsingAlert("\(context) : '\(pattern)' is not a valid hexadecimal string.")
                return nil
            }
            match = .binary(bytes)
        case "rbinary" where !http: match = .binaryPattern(pattern)
        default:
            let kinds = http ? "'status', 'rstatus', 'string', 'rstring'" : "'string', 'rstring', 'binary', 'rbinary'"
            parsingAlert("\(context) : expects \(kinds) but got '\(kind)'.")
            return nil
        }
        if case .statusPattern(let p) = match, CheckPattern(p) == nil {
            parsingAlert("\(context) : invalid regex '\(p)'.")
            return nil
        }
        if case .stringPattern(let p) = match, CheckPattern(p) == nil {
            parsingAlert("\(context) : invalid regex '\(p)'.")
            return nil
        }
        var expectation = CheckExpectation(match: match, label: "expect \(negated ? "! " : "")\(kind) '\(pattern)'")
        expectation.negated = negated
        return expectation
    }

    static func hexBytes(_ text: String) -> [UInt8]? {
        let digits = Array(text.utf8)
        guard digits.count % 2 == 0 else { return nil }
        var bytes: [UInt8] = []
        var i = 0
        while i < digits.count {
            guard let byte = UInt8(String(decoding: digits[i..<i + 2], as: UTF8.self), radix: 16) else { return nil }
            bytes.append(byte)
            i += 2
        }
        return bytes
    }
}
