import Foundation

/// TLS keywords of `bind`, `server` and `global`, and the files they name.
extension ConfigParser {
    // MARK: - Shared policy keywords

    /// Outcome of one keyword: how many words it took, not a keyword of this table, or an error.
    enum KeywordOutcome: Equatable {
        case took(Int)
        case unknown
        case failed(String)
    }

    /// Keywords of the protocol policy, on `bind`, `server`, crt-list lines and the
    /// `ssl-default-*-options` statements.
    static func applyPolicyKeyword(_ k: String, _ value: String?, to policy: inout TLSPolicy, server: Bool) -> KeywordOutcome {
        func need() -> String? { value }
        switch k {
        case "ssl-min-ver", "ssl-max-ver":
            guard let v = value else { return .failed("'\(k)' : missing the version argument") }
            guard let version = TLSVersion(name: v) else { return .failed("'\(v)' : unknown ssl/tls version") }
            if k == "ssl-min-ver" { policy.minVersion = version } else { policy.maxVersion = version }
            return .took(2)
        case "ciphers", "ciphersuites", "curves", "ecdhe":
            guard let v = value else { return .failed("'\(k)' : missing the list argument") }
            switch k {
            case "ciphers": policy.ciphers = v
            case "ciphersuites": policy.ciphersuites = v
            case "curves": policy.curves = v
            default: policy.ecdhe = v
            }
            return .took(2)
        case "no-tls-tickets": policy.noTickets = true; return .took(1)
        case "tls-tickets" where server: policy.noTickets = false; return .took(1)
        case "prefer-client-ciphers" where !server: policy.preferClientCiphers = true; return .took(1)
        default:
            for version in TLSVersion.allCases {
                if k == "no-" + version.keywordSuffix { policy.disabledVersions.insert(version); return .took(1) }
                if k == "force-" + version.keywordSuffix { policy.forcedVersion = version; return .took(1) }
            }
            return .unknown
        }
    }

    static func alpnList(_ text: String) -> [String] {
        text.split(separator: ",", omittingEmptySubsequences: true).map(String.init)
    }

    /// `ca-ignore-err` / `crt-ignore-err`: `all` or a comma list of X509 error codes.
    static func ignoredErrors(_ text: String) -> TLSIgnoredErrors? {
        var result = TLSIgnoredErrors()
        if text == "all" {
            result.all = true
            return result
        }
        for item in text.split(separator: ",") {
            if let n = Int32(item), n >= 0 {
                result.codes.append(n)
            } else if let n = x509ErrorCodes[String(item)] {
                result.codes.append(n)
            } else {
                return nil
            }
        }
        return result
    }

    /// The X509 error names configurations use most, for lists written with names.
    static let x509ErrorCodes: [String: Int32] = [
        "X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT": 2, "X509_V_ERR_UNABLE_TO_GET_CRL": 3,
        "X509_V_ERR_CERT_SIGNATURE_FAILURE": 7, "X509_V_ERR_CRL_SIGNATURE_FAILURE": 8,
        "X509_V_ERR_CERT_NOT_YET_VALID": 9, "X509_V_ERR_CERT_HAS_EXPIRED": 10,
        "X509_V_ERR_CRL_NOT_YET_VALID": 11, "X509_V_ERR_CRL_HAS_EXPIRED": 12,
        "X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT": 18, "X509_V_ERR_SELF_SIGNED_CERT_IN_CHAIN": 19,
        "X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY": 20, "X509_V_ERR_UNABLE_TO_VERIFY_LEAF_SIGNATURE": 21,
        "X509_V_ERR_CERT_CHAIN_TOO_LONG": 22, "X509_V_ERR_CERT_REVOKED": 23, "X509_V_ERR_INVALID_CA": 24,
        "X509_V_ERR_INVALID_PURPOSE": 26, "X509_V_ERR_CERT_UNTRUSTED": 27, "X509_V_ERR_CERT_REJECTED": 28,
        "X509_V_ERR_HOSTNAME_MISMATCH": 62,
    ]

    // MARK: - Files

    struct TrustFileFailure: Error { var message: String }

    func resolve(_ path: String, base: String?) -> String {
        guard let base, !path.hasPrefix("/") else { return path }
        return base.hasSuffix("/") ? base + path : base + "/" + path
    }

    /// The companions a certificate directory skips, as HAProxy does.
    static let certificateCompanions = [".key", ".issuer", ".ocsp", ".sctl"]

    /// Loads `crt <path>`: one PEM, or every certificate of a directory in name order. Returns
    /// HAProxy's message on failure.
    mutating func loadCertificates(_ given: String, into list: inout [TLSCertificateFile]) -> String? {
        let path = resolve(given, base: config.global.tls.crtBase)
        switch files.entry(path) {
        case .failed(let reason):
            return "unable to stat SSL certificate from file '\(path)' : \(reason)."
        case .directory(let names):
            let base = path.hasSuffix("/") ? path : path + "/"
            for name in names where !name.hasPrefix(".") && !Self.certificateCompanions.contains(where: { name.hasSuffix($0) }) {
                guard case .file(let bytes) = files.entry(base + name) else { continue }
                if let failure = loadCertificate(base + name, bytes, into: &list) { return failure }
                list[list.count - 1].list = path
            }
            return nil
        case .file(let bytes):
            return loadCertificate(path, bytes, into: &list)
        }
    }

    mutating func loadCertificate(_ path: String, _ pem: [UInt8], into list: inout [TLSCertificateFile]) -> String? {
        switch CertificateCheck.validate(pem, key: nil) {
        case .failure(.noCertificate):
            return "unable to load certificate from file '\(path)'."
        case .failure(.keyMismatch):
            return "inconsistencies between private key and certificate loaded '\(path)'."
        case .failure(.noKey):
            return "No Private Key found in '\(path).key'."
        case .success(true):
            var file = TLSCertificateFile(path: path, pem: pem)
            if let failure = loadOCSP(into: &file) { return failure }
            list.append(file)
            return nil
        case .success(false):
            // The key lives beside the certificate, in `<path>.key`.
            guard let key = files.file(path + ".key") else { return "No Private Key found in '\(path).key'." }
            switch CertificateCheck.validate(pem, key: key) {
            case .success:
                var file = TLSCertificateFile(path: path, pem: pem, key: key)
                if let failure = loadOCSP(into: &file) { return failure }
                list.append(file)
                return nil
            case .failure(.keyMismatch):
                return "inconsistencies between private key and certificate loaded '\(path)'."
            case .failure:
                return "No Private Key found in '\(path).key'."
            }
        }
    }

    /// A `<certificate>.ocsp` file turns stapling on for the certificate, as in haproxy: its
    /// issuer must be known (the chain, else `<certificate>.issuer`) or the load fails; a
    /// response that does not check out is only warned about and never stapled.
    mutating func loadOCSP(into file: inout TLSCertificateFile) -> String? {
        guard let bytes = files.file(file.path + ".ocsp") else { return nil }
        switch TLSOCSPFile.load(for: file, bytes: bytes, issuer: files.file(file.path + ".issuer")) {
        case .failure(let failure):
            return failure.message
        case .success(let (ocsp, warning)):
            if let warning { diagnostics.append(Diagnostic(.warning, "config : " + warning)) }
            file.ocsp = ocsp
            return nil
        }
    }

    /// `ca-file`, `crl-file`, `ca-verify-file`: read now, checked to hold what they should.
    mutating func loadTrustFile(_ k: String, _ given: String, crl: Bool, server: Bool = false) -> Swift.Result<TLSFileContents, TrustFileFailure> {
        let path = resolve(given, base: config.global.tls.caBase)
        let reason: String
        switch files.entry(path) {
        case .file(let bytes) where CertificateCheck.countCertificates(bytes, crl: crl) > 0:
            return .success(TLSFileContents(path: path, bytes: bytes))
        case .file: reason = "no certificate or crl found"
        case .directory: reason = ConfigLoader.errorText(EISDIR)
        case .failed(let text): reason = text
        }
        // haproxy's two alerts: the store's reason, then the keyword's. On a server line the
        // first one carries the line's location and the second none.
        let opened = "Couldn't open the ca-file '\(path)' (\(reason))."
        let unable = "'\(k)' : unable to load \(path)"
        if server {
            alertsAfterKeywordFailure.append("config : \(unable).")
            return .failure(TrustFileFailure(message: opened))
        }
        alert(opened)
        return .failure(TrustFileFailure(message: unable))
    }

    /// `tls-ticket-keys <file>`: base64 keys of 48 bytes (AES-128) or 80 (AES-256), one a line,
    /// at least three. As in HAProxy the last three are kept, in a ring where line n takes slot
    /// n mod 3, and the penultimate line encrypts.
    static func ticketKeys(_ path: String, files: ConfigFiles) -> Swift.Result<TLSTicketKeys, TrustFileFailure> {
        guard case .file(let bytes) = files.entry(path) else {
            return .failure(TrustFileFailure(message: "'\(path)' : unable to load ssl tickets keys file"))
        }
        var ring: [[UInt8]] = Array(repeating: [], count: TLSTicketKeys.ringSize)
        var size = 0, count = 0
        var lines = bytes.split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: false)
        if lines.last?.isEmpty == true { lines.removeLast() }  // the final line feed
        for line in lines {
            var text = line
            if text.last == UInt8(ascii: "\r") { text = text.dropLast() }
            guard let key = Data(base64Encoded: Data(text)) else {
                return .failure(TrustFileFailure(message: "'\(path)' : unable to decode base64 key on line \(count + 1)"))
            }
            guard key.count == 48 || key.count == 80, size == 0 || key.count == size else {
                return .failure(TrustFileFailure(message: "'\(path)' : wrong sized key on line \(count + 1)"))
            }
            size = key.count
            ring[count % TLSTicketKeys.ringSize] = Array(key)
            count += 1
        }
        guard count >= TLSTicketKeys.ringSize else {
            return .failure(TrustFileFailure(message: "'\(path)' : please supply at least \(TLSTicketKeys.ringSize) keys in the tls-tickets-file"))
        }
        return .success(TLSTicketKeys(path: path, ring: ring, encrypting: (count - 2) % TLSTicketKeys.ringSize))
    }

    /// `crt-list <file>`: one certificate a line, with `[options]` and SNI filters.
    mutating func loadCertificateList(_ given: String, into tls: inout BindTLSSettings) -> String? {
        let path = resolve(given, base: config.global.tls.crtBase)
        guard case .file(let bytes) = files.entry(path) else {
            let reason: String
            if case .failed(let r) = files.entry(path) { reason = r } else { reason = "Is a directory" }
            return "'crt-list' : cannot open file '\(path)' : \(reason)"
        }
        var number = 0
        // Lines end at LF bytes (a CRLF pair is one Character, which a split on "\n" misses).
        for rawLine in bytes.split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: false) {
            number += 1
            let text = Substring(decoding: rawLine.last == UInt8(ascii: "\r") ? rawLine.dropLast() : rawLine, as: UTF8.self)
            let line = String(text.trimmingBlanks())
            guard !line.isEmpty, !line.hasPrefix("#") else { continue }
            let entry: CrtListLine
            switch Self.crtListLine(line, files: files, caBase: config.global.tls.caBase) {
            case .failure(let failure): return "'crt-list' : \(failure.message) in file '\(path)' at line \(number)."
            case .success(let parsed): entry = parsed
            }
            var loaded: [TLSCertificateFile] = []
            if let failure = loadCertificates(entry.file, into: &loaded) { return failure }
            let (options, words, optionWords) = (entry.options, entry.filters, entry.optionWords)
            for var cert in loaded {
                cert.options = options
                cert.filters = words
                cert.list = path
                cert.line = number
                cert.optionWords = optionWords
                tls.certificates.append(cert)
            }
        }
        return nil
    }

    /// One line of a crt-list: `<crtfile> [<options>] [[!]<snifilter> ...]`.
    public struct CrtListLine: Sendable {
        public var file: String
        public var options: TLSBindOptions?
        public var optionWords: [String]
        public var filters: [String]
    }

    public struct CrtListFailure: Error { public var message: String }

    /// Parses a crt-list line (also what `add ssl crt-list` receives); `ca-file` and `crl-file`
    /// options are read through `files`.
    public static func crtListLine(_ line: String, files: ConfigFiles, caBase: String?) -> Swift.Result<CrtListLine, CrtListFailure> {
        var words = line.split(whereSeparator: { $0 == " " || $0 == "\t" }).map(String.init)
        guard !words.isEmpty else { return .failure(CrtListFailure(message: "empty line")) }
        let file = words.removeFirst()
        guard let first = words.first, first.hasPrefix("[") else {
            return .success(CrtListLine(file: file, options: nil, optionWords: [], filters: words))
        }
        var block: [String] = []
        var closed = false
        var opened = false
        while !words.isEmpty {
            var word = words.removeFirst()
            if !opened {
                word.removeFirst()
                opened = true
            }
            if word.hasSuffix("]") {
                word.removeLast()
                closed = true
            }
            if !word.isEmpty { block.append(word) }
            if closed { break }
        }
        guard closed else { return .failure(CrtListFailure(message: "missing ']'")) }
        var parsed = TLSBindOptions()
        var i = 0
        while i < block.count {
            let k = block[i]
            let v = i + 1 < block.count ? block[i + 1] : nil
            switch k {
            case "alpn":
                guard let v else { return .failure(CrtListFailure(message: "'alpn' : missing the list")) }
                parsed.alpn = alpnList(v); i += 2
            case "no-alpn": parsed.alpn = []; i += 1
            case "npn": i += 2
            case "allow-0rtt", "no-ca-names": i += 1
            case "verify":
                guard let v, let mode = TLSVerifyMode(rawValue: v) else {
                    return .failure(CrtListFailure(message: "'verify' : unknown verify method"))
                }
                parsed.verify = mode; i += 2
            case "ca-file", "crl-file", "ca-verify-file":
                guard let v else { return .failure(CrtListFailure(message: "'\(k)' : missing file")) }
                let path = v.hasPrefix("/") || caBase == nil ? v : caBase! + "/" + v
                guard let bytes = files.file(path), CertificateCheck.countCertificates(bytes, crl: k == "crl-file") > 0 else {
                    return .failure(CrtListFailure(message: "'\(k)' : unable to load \(path)"))
                }
                let contents = TLSFileContents(path: path, bytes: bytes)
                switch k {
                case "ca-file": parsed.caFile = contents
                case "crl-file": parsed.crlFile = contents
                default: parsed.caVerifyFile = contents
                }
                i += 2
            default:
                switch applyPolicyKeyword(k, v, to: &parsed.policy, server: false) {
                case .took(let n): i += n
                case .failed(let message): return .failure(CrtListFailure(message: message))
                case .unknown: return .failure(CrtListFailure(message: "unknown keyword '\(k)'"))
                }
            }
        }
        return .success(CrtListLine(file: file, options: parsed, optionWords: block, filters: words))
    }

    // MARK: - bind

    /// One TLS keyword of a `bind` line at `w[i]`.
    mutating func parseBindTLSKeyword(_ w: [String], at i: Int, into bind: inout BindSettings) -> KeywordOutcome {
        let k = w[i]
        let value = i + 1 < w.count ? w[i + 1] : nil
        switch k {
        case "ssl": bind.tls.enabled = true; return .took(1)
        case "strict-sni": bind.tls.strictSNI = true; return .took(1)
        case "no-alpn": bind.tls.noALPN = true; bind.tls.alpn = []; return .took(1)
        case "allow-0rtt": bind.tls.allow0RTT = true; return .took(1)
        case "no-ca-names", "generate-certificates", "ssl-no-verify": return .took(1)
        case "crt":
            guard let value else { return .failed("'crt' : missing certificate location") }
            if let failure = loadCertificates(value, into: &bind.tls.certificates) { return .failed(failure) }
            bind.tls.crtLists.append(value)
            return .took(2)
        case "crt-list":
            guard let value else { return .failed("'crt-list' : missing certificate location") }
            if let failure = loadCertificateList(value, into: &bind.tls) { return .failed(failure) }
            bind.tls.crtLists.append(value)
            return .took(2)
        case "alpn":
            guard let value else { return .failed("'alpn' : missing the comma-delimited ALPN protocol suite") }
            bind.tls.alpn = Self.alpnList(value)
            if bind.tls.alpn!.contains("h2") {
                warn("parsing [\(file):\(lineNumber)] : 'bind \(w[1])' : 'alpn' : Hasp does not serve HTTP/2 yet: 'h2' is not offered, the other protocols are.")
            }
            return .took(2)
        case "npn":
            guard value != nil else { return .failed("'npn' : missing the comma-delimited NPN protocol suite") }
            return .took(2)
        case "verify":
            guard let value, let mode = TLSVerifyMode(rawValue: value) else {
                return .failed("'verify' : unknown verify method '\(value ?? "")', only 'none', 'optional', and 'required' are supported")
            }
            bind.tls.verify = mode
            return .took(2)
        case "ca-file", "crl-file", "ca-verify-file":
            guard let value else { return .failed("'\(k)' : missing \(k == "crl-file" ? "CRLfile" : "CAfile") path") }
            switch loadTrustFile(k, value, crl: k == "crl-file") {
            case .failure(let failure): return .failed(failure.message)
            case .success(let contents):
                switch k {
                case "ca-file": bind.tls.caFile = contents
                case "crl-file": bind.tls.crlFile = contents
                default: bind.tls.caVerifyFile = contents
                }
            }
            return .took(2)
        case "ca-ignore-err", "crt-ignore-err":
            guard let value, let set = Self.ignoredErrors(value) else {
                return .failed("'\(k)' : missing error IDs list")
            }
            if k == "ca-ignore-err" { bind.tls.caIgnore = set } else { bind.tls.crtIgnore = set }
            return .took(2)
        case "tls-ticket-keys":
            guard let value else { return .failed("'\(k)' : missing TLS ticket keys file path") }
            switch Self.ticketKeys(value, files: files) {
            case .failure(let failure): return .failed(failure.message)
            case .success(let keys): bind.tls.ticketKeys = keys
            }
            return .took(2)
        case "ca-sign-file", "ca-sign-pass", "sigalgs", "client-sigalgs", "ssl-default-crt":
            guard value != nil else { return .failed("'\(k)' : missing argument") }
            return .took(2)
        default:
            return Self.applyPolicyKeyword(k, value, to: &bind.tls.policy, server: false)
        }
    }

    /// Checks made once the whole file is read, in HAProxy's words.
    mutating func checkTLSBinds() {
        for proxy in config.proxies where proxy.capabilities.contains(.frontend) {
            for bind in proxy.binds where bind.tls.enabled {
                let at = "for bind '\(bind.text)' at [\(bind.location)]"
                if bind.tls.certificates.isEmpty {
                    alert("Proxy '\(proxy.name)': no SSL certificate specified \(at) (use 'crt').")
                    continue
                }
                let verify = bind.tls.verify ?? .none
                if verify != .none, bind.tls.caFile == nil {
                    alert("Proxy '\(proxy.name)': verify is enabled but no CA file specified \(at).")
                }
                var policies = [bind.tls.policy.over(config.global.tls.bindDefaults)]
                policies += bind.tls.certificates.compactMap { $0.options?.policy.over(policies[0]) }
                for policy in policies {
                    if let refusal = CertificateCheck.check(policy, server: true) {
                        alert("Proxy '\(proxy.name)': \(Self.describe(refusal)) \(at).")
                        break
                    }
                }
            }
        }
    }

    static func describe(_ refusal: CertificateCheck.PolicyRefusal) -> String {
        switch refusal {
        case .ciphers(let c): "unable to set SSL cipher list to '\(c)'"
        case .ciphersuites(let c): "unable to set TLS 1.3 cipher suites to '\(c)'"
        case .curves(let c): "unable to set SSL curves list to '\(c)'"
        case .ecdhe(let c): "unable to set elliptic named curve to '\(c)'"
        }
    }

    // MARK: - server

    mutating func parseServerTLSKeyword(_ w: [String], at i: Int, into tls: inout ServerTLSSettings) -> KeywordOutcome {
        let k = w[i]
        let value = i + 1 < w.count ? w[i + 1] : nil
        switch k {
        case "ssl": tls.enabled = true; return .took(1)
        case "no-ssl": tls.enabled = false; return .took(1)
        case "check-ssl": tls.checkSSL = true; return .took(1)
        case "no-check-ssl": tls.checkSSL = false; return .took(1)
        case "no-ssl-reuse": tls.noSSLReuse = true; return .took(1)
        case "ssl-reuse": tls.noSSLReuse = false; return .took(1)
        case "no-verifyhost": tls.verifyHost = nil; return .took(1)
        case "allow-0rtt", "send-proxy-v2-ssl", "send-proxy-v2-ssl-cn", "no-send-proxy-v2-ssl", "no-send-proxy-v2-ssl-cn":
            return .took(1)
        case "verify":
            guard let value, value == "none" || value == "required" else {
                return .failed("'verify' : unknown verify method '\(value ?? "")', only 'none' and 'required' are supported")
            }
            tls.verify = TLSVerifyMode(rawValue: value)
            return .took(2)
        case "ca-file", "crl-file":
            guard let value else { return .failed("'\(k)' : missing \(k == "ca-file" ? "CAfile" : "CRLfile") path") }
            if k == "ca-file", value == "@system-ca" {
                tls.systemCA = true
                tls.caFile = nil
                return .took(2)
            }
            switch loadTrustFile(k, value, crl: k == "crl-file", server: true) {
            case .failure(let failure): return .failed(failure.message)
            case .success(let contents):
                if k == "ca-file" { tls.caFile = contents; tls.systemCA = false } else { tls.crlFile = contents }
            }
            return .took(2)
        case "sni", "verifyhost", "check-sni":
            guard let value else { return .failed("'\(k)' : missing \(k == "verifyhost" ? "hostname" : "SNI") argument") }
            if k == "sni" {
                do { _ = try SampleExpressionParser.parse(value, context: ruleContext) } catch {
                    return .failed("'sni' : failed to parse sni expression: \(error.message)")
                }
            }
            switch k {
            case "sni": tls.sni = value
            case "verifyhost": tls.verifyHost = value
            default: tls.checkSNI = value
            }
            return .took(2)
        case "alpn", "check-alpn":
            guard let value else { return .failed("'\(k)' : missing the comma-delimited ALPN protocol suite") }
            var list = Self.alpnList(value)
            if list.contains("h2") {
                warn("parsing [\(file):\(lineNumber)] : '\(k)' : Hasp does not speak HTTP/2 to servers yet: 'h2' is not offered, the other protocols are.")
                list.removeAll { $0 == "h2" }
            }
            if k == "alpn" { tls.alpn = list } else { tls.checkALPN = list }
            return .took(2)
        case "npn":
            guard value != nil else { return .failed("'npn' : missing the comma-delimited NPN protocol suite") }
            return .took(2)
        case "crt":
            guard let value else { return .failed("'crt' : missing certificate file path") }
            var loaded: [TLSCertificateFile] = []
            if let failure = loadCertificates(value, into: &loaded) { return .failed(failure) }
            tls.certificate = loaded.first
            return .took(2)
        case "sigalgs", "client-sigalgs":
            guard value != nil else { return .failed("'\(k)' : missing argument") }
            return .took(2)
        default:
            return Self.applyPolicyKeyword(k, value, to: &tls.policy, server: true)
        }
    }

    /// A server with `ssl` and verification required must say what it trusts.
    mutating func checkServerTLS(_ server: ServerSettings, proxy: String) -> Bool {
        let tls = server.tls
        guard tls.enabled || tls.checkSSL else { return true }
        let verify = tls.verify ?? (config.global.sslServerVerifyRequired ? .required : .none)
        if verify == .required, tls.caFile == nil, !tls.systemCA {
            alert("[\(file):\(lineNumber)] : 'server \(proxy)/\(server.name)' : verify is enabled by default but no CA file specified. If you're running on a LAN where you're certain to trust the server's certificate, please set an explicit 'verify none' statement on the 'server' line, or use 'ssl-server-verify none' in the global section to disable server-side verifications by default.")
            return false
        }
        if let refusal = CertificateCheck.check(tls.policy.over(config.global.tls.serverDefaults), server: false) {
            alert("[\(file):\(lineNumber)] : 'server \(proxy)/\(server.name)' : \(Self.describe(refusal)).")
            return false
        }
        return true
    }

    // MARK: - global

    /// The TLS statements of `global`; false when `w[0]` is not one of them.
    mutating func parseGlobalTLS(_ w: [String]) -> Bool {
        let k = w[0]
        switch k {
        case "ssl-default-bind-options", "ssl-default-server-options":
            var policy = k == "ssl-default-bind-options" ? config.global.tls.bindDefaults : config.global.tls.serverDefaults
            var i = 1
            while i < w.count {
                switch Self.applyPolicyKeyword(w[i], i + 1 < w.count ? w[i + 1] : nil, to: &policy, server: k.contains("server")) {
                case .took(let n): i += n
                case .failed(let message):
                    parsingAlert("\(message) on global statement '\(k)'.")
                    return true
                case .unknown:
                    parsingAlert("unknown option '\(w[i])' on global statement '\(k)'.")
                    return true
                }
            }
            if k == "ssl-default-bind-options" { config.global.tls.bindDefaults = policy } else { config.global.tls.serverDefaults = policy }
        case "ssl-default-bind-ciphers", "ssl-default-bind-ciphersuites", "ssl-default-bind-curves",
             "ssl-default-server-ciphers", "ssl-default-server-ciphersuites", "ssl-default-server-curves":
            guard w.count >= 2 else {
                parsingAlert("global statement '\(k)' expects a cipher suite as an argument.")
                return true
            }
            let bind = k.hasPrefix("ssl-default-bind")
            var policy = bind ? config.global.tls.bindDefaults : config.global.tls.serverDefaults
            if k.hasSuffix("ciphersuites") { policy.ciphersuites = w[1] } else if k.hasSuffix("ciphers") { policy.ciphers = w[1] } else { policy.curves = w[1] }
            if bind { config.global.tls.bindDefaults = policy } else { config.global.tls.serverDefaults = policy }
        case "ssl-default-bind-sigalgs", "ssl-default-server-sigalgs", "ssl-default-bind-client-sigalgs",
             "ssl-default-server-client-sigalgs", "ssl-engine", "ssl-mode-async", "ssl-load-extra-files",
             "ssl-load-extra-del-ext", "ssl-skip-self-issued-ca", "tune.ssl.maxrecord", "tune.ssl.force-private-cache",
             "tune.ssl.capture-buffer-size", "tune.ssl.capture-cipherlist-size", "tune.ssl.ssl-ctx-cache-size",
             "tune.ssl.keylog", "ssl-propquery", "ssl-provider", "ssl-provider-path", "issuers-chain-path":
            break
        case "ca-base", "crt-base":
            guard w.count >= 2 else {
                parsingAlert("'\(k)' expects a directory path as an argument.")
                return true
            }
            if k == "ca-base" {
                if config.global.tls.caBase != nil { parsingAlert("'ca-base' already specified. Continuing."); return true }
                config.global.tls.caBase = w[1]
            } else {
                if config.global.tls.crtBase != nil { parsingAlert("'crt-base' already specified. Continuing."); return true }
                config.global.tls.crtBase = w[1]
            }
        case "tune.ssl.default-dh-param":
            guard w.count >= 2, let n = Int(w[1]), n >= 1024 else {
                parsingAlert("'\(k)' expects an integer argument >= 1024.")
                return true
            }
            config.global.tls.defaultDHParam = n
        case "ssl-dh-param-file":
            guard w.count >= 2 else { parsingAlert("'\(k)' expects a file path as an argument."); return true }
            // Read now (by the master, recorded for the worker), and checked to hold DH parameters.
            guard case .file(let bytes) = files.entry(w[1]), CertificateCheck.hasDHParameters(bytes) else {
                parsingAlert("'\(k)': unable to load DH parameters from file <\(w[1])>.")
                return true
            }
            config.global.tls.dhParams = TLSFileContents(path: w[1], bytes: bytes)
        case "tune.ssl.cachesize", "tune.ssl.lifetime":
            guard w.count >= 2 else { parsingAlert("'\(k)' expects an integer argument."); return true }
            if k == "tune.ssl.cachesize" {
                guard let n = Int(w[1]), n >= 0 else { parsingAlert("'\(k)' expects a positive integer argument."); return true }
                config.global.tls.cacheSize = n
            } else {
                do {
                    let ms = try Units.milliseconds(w[1], defaultUnitMs: 1000)
                    config.global.tls.lifetimeSeconds = Int(ms / 1000)
                } catch {
                    parsingAlert("'\(k)' expects a time argument.")
                }
            }
        default:
            return false
        }
        return true
    }
}
