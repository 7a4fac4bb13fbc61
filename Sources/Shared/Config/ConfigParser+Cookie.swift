/// `cookie`, `dynamic-cookie-key`, `force-persist` and `ignore-persist`: cookie persistence,
/// with HAProxy's messages.
extension ConfigParser {
    /// `cookie <name> [rewrite|insert|prefix] [indirect] [nocache] [postonly] [preserve]
    /// [httponly] [secure] [domain <d>]* [maxidle <t>] [maxlife <t>] [dynamic] [attr <v>]*`.
    mutating func parseCookie(_ w: [String], _ p: inout ProxySettings) {
        guard hasCapability(.backend, for: "cookie", in: p) else { return }
        guard w.count >= 2, !w[1].isEmpty else {
            parsingAlert("'cookie' expects <cookie_name> as argument.")
            return
        }
        var cookie = CookieSettings(name: w[1])
        var modes: [CookieSettings.Mode] = []
        var i = 2
        while i < w.count {
            let option = w[i]
            let value = i + 1 < w.count ? w[i + 1] : ""
            switch option {
            case "rewrite": modes.append(.rewrite)
            case "insert": modes.append(.insert)
            case "prefix": modes.append(.prefix)
            case "indirect": cookie.indirect = true
            case "nocache": cookie.noCache = true
            case "postonly": cookie.postOnly = true
            case "preserve": cookie.preserve = true
            case "httponly": cookie.httpOnly = true
            case "secure": cookie.secure = true
            case "dynamic": cookie.dynamic = true
            case "domain":
                guard !value.isEmpty else {
                    alert("parsing [\(file):\(lineNumber)]: 'domain' expects <domain> as argument.")
                    return
                }
                if !value.contains(".") {
                    warn("parsing [\(file):\(lineNumber)]: domain '\(value)' contains no embedded dot, this configuration may not work properly (see RFC6265#5.2.3).")
                }
                if let bad = value.first(where: { !($0.isASCII && ($0.isLetter || $0.isNumber)) && $0 != "." && $0 != "-" && $0 != "_" }) {
                    alert("parsing [\(file):\(lineNumber)]: character '\(bad)' is not permitted in domain name '\(value)'.")
                    return
                }
                cookie.domains.append(value)
                i += 1
            case "maxidle", "maxlife":
                let what = option == "maxidle" ? "<idletime>" : "<lifetime>"
                guard !value.isEmpty else {
                    alert("parsing [\(file):\(lineNumber)]: '\(option)' expects \(what) in seconds as argument.")
                    return
                }
                guard let seconds = cookieSeconds(value, option) else { return }
                if option == "maxidle" { cookie.maxIdleSeconds = seconds } else { cookie.maxLifeSeconds = seconds }
                i += 1
            case "attr":
                guard !value.isEmpty else {
                    alert("parsing [\(file):\(lineNumber)]: 'attr' expects <value> as argument.")
                    return
                }
                if let bad = value.unicodeScalars.first(where: { $0.value < 0x20 || $0.value == 0x7F || $0 == ";" }) {
                    let hex = String(bad.value, radix: 16, uppercase: true)
                    alert("parsing [\(file):\(lineNumber)]: character '%x\(hex.count < 2 ? "0" + hex : hex)' is not permitted in attribute value.")
                    return
                }
                cookie.attributes.append(value)
                i += 1
            default:
                parsingAlert("'cookie' supports 'rewrite', 'insert', 'prefix', 'indirect', 'nocache', 'postonly', 'domain', 'maxidle', 'dynamic', 'maxlife' and 'attr' options.")
                return
            }
            i += 1
        }
        var failed = false
        if modes.contains(.rewrite) && cookie.indirect {
            parsingAlert("cookie 'rewrite' and 'indirect' modes are incompatible.")
            failed = true
        }
        if Set(modes).count > 1 {
            parsingAlert("cookie 'rewrite', 'insert' and 'prefix' modes are incompatible.")
            failed = true
        }
        cookie.mode = modes.first ?? .passive
        if cookie.preserve && cookie.mode != .insert && !cookie.indirect {
            parsingAlert("cookie 'preserve' requires at least 'insert' or 'indirect'.")
            failed = true
        }
        if !failed { p.cookie = cookie }
    }

    /// A `maxidle`/`maxlife` delay: seconds unless a unit says otherwise.
    private mutating func cookieSeconds(_ text: String, _ option: String) -> Int64? {
        do throws(Units.TimeError) {
            // Below a second counts as none (HAProxy 2.6 accepts it the same way).
            let ms = try Units.milliseconds(text, defaultUnitMs: 1000)
            guard ms / 1000 <= Int64(Int32.max) else { throw .overflow }
            return ms / 1000
        } catch {
            switch error {
            case .unexpectedCharacter(let c):
                alert("parsing [\(file):\(lineNumber)]: unexpected character '\(c)' in argument to <\(option)>.")
            case .empty, .overflow:
                alert("parsing [\(file):\(lineNumber)]: timer overflow in argument <\(text)> to <\(option)>, maximum value is 2147483647 s (~68 years).")
            }
            return nil
        }
    }

    /// `dynamic-cookie-key <secret>`: the key hashed with a server's address into its cookie.
    mutating func parseDynamicCookieKey(_ w: [String], _ p: inout ProxySettings) {
        guard hasCapability(.backend, for: "dynamic-cookie-key", in: p) else { return }
        guard w.count >= 2, !w[1].isEmpty else {
            parsingAlert("'dynamic-cookie-key' expects <secret_key> as argument.")
            return
        }
        p.dynamicCookieKey = w[1]
    }

    /// `force-persist|ignore-persist if|unless <condition>`.
    mutating func parsePersistRule(_ w: [String], _ p: inout ProxySettings) {
        let k = w[0]
        guard p.kind != .defaults else {
            parsingAlert("'\(k)' not allowed in 'defaults' section.")
            return
        }
        guard hasCapability(.backend, for: k, in: p) else { return }
        let (_, conditionWords) = ConfigParser.splitCondition(w, from: 1)
        guard conditionWords != nil else {
            parsingAlert("'\(k)' requires either 'if' or 'unless' followed by a condition.")
            return
        }
        guard let compiled = compileCondition(conditionWords, p, stage: .httpRequest, what: "a '\(k)' rule condition"),
              let condition = compiled, let kind = PersistRule.Kind(rawValue: k) else { return }
        p.rules.persistRules.append(PersistRule(kind: kind, condition: condition, location: here))
    }
}
