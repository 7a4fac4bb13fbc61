/// The answers a configuration writes itself: `deny`/`tarpit`/`return` arguments, `redirect`,
/// `errorfile` and `http-error`.
extension ConfigParser {
    /// `deny`/`tarpit`/`return` arguments: `[deny_status <code>] [status <code>]
    /// [content-type <type>] [string|lf-string|file|lf-file|errorfile <arg>] [hdr <name> <fmt>]*`.
    mutating func parseReply(_ args: [String], defaultStatus: Int, denyStyle: Bool, stage: RuleStage, prefix: String) -> LocalReply? {
        var reply = LocalReply(status: defaultStatus, body: denyStyle ? .errorPage : .none)
        var hasPayload = false
        var i = 0
        while i < args.count {
            let k = args[i]
            let value = i + 1 < args.count ? args[i + 1] : nil
            switch k {
            case "status", "deny_status":
                guard let value, let code = Int(value), (200...599).contains(code) else {
                    parsingAlert(prefix + "Unexpected status code '\(value ?? "")'.")
                    return nil
                }
                reply.status = code
                i += 2
            case "content-type":
                guard let value else { parsingAlert(prefix + "'content-type' expects an argument."); return nil }
                reply.contentType = value
                i += 2
            case "string":
                guard let value else { parsingAlert(prefix + "'\(k)' expects <str> as argument."); return nil }
                reply.body = .bytes(Array(value.utf8)); hasPayload = true
                i += 2
            case "lf-string":
                guard let value else { parsingAlert(prefix + "'\(k)' expects <fmt> as argument."); return nil }
                guard let f = compileFormat(value, stage: stage, context: prefix) else { return nil }
                reply.body = .format(f); hasPayload = true
                i += 2
            case "file", "lf-file", "errorfile":
                guard let value else { parsingAlert(prefix + "'\(k)' expects <file> as argument."); return nil }
                guard let bytes = FileReader.read(value) else {
                    parsingAlert(prefix + "failed to open file '\(value)'.")
                    return nil
                }
                if bytes.isEmpty, k == "file" {
                    // An empty file is no payload (no content-type needed).
                    reply.body = .none
                    i += 2
                    continue
                }
                if k == "lf-file" {
                    guard let f = compileFormat(String(decoding: bytes, as: UTF8.self), stage: stage, context: prefix) else { return nil }
                    reply.body = .format(f)
                } else if k == "errorfile" {
                    reply.body = .bytes(bytes)
                    reply.contentType = "\u{0}raw"
                } else {
                    reply.body = .bytes(bytes)
                }
                hasPayload = k != "errorfile"
                i += 2
            case "default-errorfiles":
                reply.body = .errorPage
                i += 1
            case "hdr":
                guard i + 2 < args.count else { parsingAlert(prefix + "'hdr' expects <name> and <fmt> as arguments."); return nil }
                guard let f = compileFormat(args[i + 2], stage: stage, context: prefix) else { return nil }
                reply.headers.append((args[i + 1], f))
                i += 3
            default:
                parsingAlert(prefix + "unknown keyword '\(k)'.")
                return nil
            }
        }
        if hasPayload, reply.contentType == nil, reply.body.hasContent {
            parsingAlert(prefix + "a content-type must be specified when a payload is set.")
            return nil
        }
        return reply
    }

    /// `redirect location|prefix|scheme <fmt> [code <n>] [drop-query] [append-slash]
    /// [set-cookie <name[=value]>] [clear-cookie <name>] [ignore-empty]`, the options in any order
    /// (`redirect code 301 location ...` is as good).
    mutating func parseRedirect(_ args: [String], stage: RuleStage, prefix: String) -> RedirectRule? {
        func expected(_ word: String) {
            parsingAlert(prefix + "expects 'code', 'prefix', 'location', 'scheme', 'set-cookie', 'clear-cookie', 'drop-query' or 'append-slash' (was '\(word)').")
        }
        var kind: RedirectRule.Kind? = nil
        var targetText = ""
        var code = 302
        var dropQuery = false, appendSlash = false, ignoreEmpty = false
        var setCookie: String? = nil, clearCookie: String? = nil
        var i = 0
        while i < args.count {
            switch args[i] {
            case "location", "prefix", "scheme":
                guard i + 1 < args.count else { expected(args[i]); return nil }
                kind = RedirectRule.Kind(rawValue: args[i])
                targetText = args[i + 1]
                i += 2
            case "code":
                guard i + 1 < args.count, let n = Int(args[i + 1]), [301, 302, 303, 307, 308].contains(n) else {
                    parsingAlert(prefix + "'code': unsupported HTTP code '\(i + 1 < args.count ? args[i + 1] : "")'.")
                    return nil
                }
                code = n
                i += 2
            case "drop-query": dropQuery = true; i += 1
            case "append-slash": appendSlash = true; i += 1
            case "ignore-empty": ignoreEmpty = true; i += 1
            case "set-cookie", "clear-cookie":
                guard i + 1 < args.count else { parsingAlert(prefix + "'\(args[i])' expects a cookie name."); return nil }
                if args[i] == "set-cookie" { setCookie = args[i + 1] } else { clearCookie = args[i + 1] }
                i += 2
            default:
                expected(args[i])
                return nil
            }
        }
        guard let kind else { expected(args.first ?? ""); return nil }
        guard let target = compileFormat(targetText, stage: stage, context: prefix) else { return nil }
        var rule = RedirectRule(kind: kind, target: target, code: code)
        (rule.dropQuery, rule.appendSlash, rule.ignoreEmpty) = (dropQuery, appendSlash, ignoreEmpty)
        (rule.setCookie, rule.clearCookie) = (setCookie, clearCookie)
        return rule
    }

    /// `errorfile <code> <file>` (in proxies and `http-errors` sections).
    mutating func parseErrorFile(_ w: [String]) -> (Int, [UInt8])? {
        guard w.count >= 3, !w[1].isEmpty, !w[2].isEmpty else {
            parsingAlert("errorfile : expects <status_code> and <file> as arguments.")
            return nil
        }
        guard w.count == 3 else {
            parsingAlert("errorfile : expects exactly two arguments.")
            return nil
        }
        let code = Int(w[1]) ?? 0
        guard Self.errorFileCodes.contains(code) else {
            parsingAlert("errorfile : status code '\(code)' not handled.")
            return nil
        }
        guard let bytes = FileReader.read(w[2]) else {
            parsingAlert("errorfile : error opening file '\(w[2])'.")
            return nil
        }
        guard bytes.starts(with: Array("HTTP/".utf8)) else {
            parsingAlert("errorfile : '\(w[2])': invalid error message: unable to parse headers (error offset: 0)")
            return nil
        }
        return (code, bytes)
    }

    /// `http-error status <code> [content-type <t>] [string|file|errorfile <x>|default-errorfiles]
    /// [hdr <name> <value>]*`: the proxy's answer for that status, made once at load.
    mutating func parseHTTPError(_ w: [String], _ p: inout ProxySettings) {
        let prefix = "parsing [\(file):\(lineNumber)] : 'http-error' : "
        guard w.count >= 3, w[1] == "status", let code = Int(w[2]), Self.errorFileCodes.contains(code) else {
            alert(prefix + "expects 'status <code>' with a status code HAProxy handles.")
            return
        }
        var contentType: String? = nil
        var body: [UInt8]? = nil
        var headers: [(String, String)] = []
        var i = 3
        while i < w.count {
            let value = i + 1 < w.count ? w[i + 1] : nil
            switch w[i] {
            case "content-type":
                guard let value else { alert(prefix + "'content-type' expects an argument."); return }
                contentType = value
                i += 2
            case "string":
                guard let value else { alert(prefix + "'string' expects <str> as argument."); return }
                body = Array(value.utf8)
                i += 2
            case "file", "errorfile":
                guard let value, let bytes = FileReader.read(value) else {
                    alert(prefix + "failed to open file '\(value ?? "")'.")
                    return
                }
                if w[i] == "errorfile" {
                    p.errorFiles[code] = bytes
                    return
                }
                body = bytes
                i += 2
            case "default-errorfiles":
                p.errorFiles[code] = nil
                return
            case "hdr":
                guard i + 2 < w.count else { alert(prefix + "'hdr' expects <name> and <value> as arguments."); return }
                guard !w[i + 2].contains("%") else {
                    alert(prefix + "log-format values in 'http-error' are not supported by Hasp yet.")
                    return
                }
                headers.append((w[i + 1].lowercased(), w[i + 2]))
                i += 3
            case "lf-string", "lf-file", "errorfiles":
                alert(prefix + "'\(w[i])' is not supported by Hasp yet in 'http-error'.")
                return
            default:
                alert(prefix + "unknown keyword '\(w[i])'.")
                return
            }
        }
        if let body, !body.isEmpty, contentType == nil {
            alert(prefix + "a content-type must be specified when a payload is set.")
            return
        }
        var text = "HTTP/1.1 \(code) \(HTTPReasonPhrase.text(code))\r\n"
        for (name, value) in headers { text += "\(name): \(value)\r\n" }
        text += "content-length: \(body?.count ?? 0)\r\n"
        if let contentType, body != nil { text += "content-type: \(contentType)\r\n" }
        text += "\r\n"
        p.errorFiles[code] = Array(text.utf8) + (body ?? [])
    }
}
