import CHaspTLS
import Shared

/// HAProxy's runtime API for certificates: `show ssl cert`, `set/commit/abort/new/del ssl cert`,
/// `show/add/del ssl crt-list`, with HAProxy's answers.
extension RuntimeAPI {
    static func tlsCommands() -> [Spec] {
        [
            Spec(["show", "ssl", "cert"], usage: "show ssl cert [<certfile>]", help: "display the SSL certificates used in memory, or the details of a file", level: .admin) { s, _, c in
                let store = s.runtime.tlsCertificates
                guard c.words.count > 3 else { return CLIReply(Self.certificateList(store)) }
                return Self.certificateDetails(store, c.words[3])
            },
            Spec(["set", "ssl", "cert"], usage: "set ssl cert <certfile> <payload>", help: "replace a certificate file", level: .admin) { s, _, c in
                guard c.words.count > 3 else { return .error("'set ssl cert' expects a filename and a certificate as a payload\n") }
                guard let payload = c.payload, !payload.isEmpty else {
                    return .error("'set ssl cert' expects a filename and a certificate as a payload\n")
                }
                let name = c.words[3]
                // `<file>.ocsp` and `<file>.issuer` are parts of `<file>`'s transaction.
                for (suffix, kind) in [(".ocsp", TLSCertificateStore.Companion.ocsp), (".issuer", .issuer)] where name.hasSuffix(suffix) {
                    let base = String(name.dropLast(suffix.count))
                    return Self.reply(s.runtime.tlsCertificates.setCompanion(name, of: base, kind, payload: payload))
                }
                return Self.reply(s.runtime.tlsCertificates.set(name, pem: Array((payload + "\n").utf8)))
            },
            Spec(["commit", "ssl", "cert"], usage: "commit ssl cert <certfile>", help: "commit a certificate file", level: .admin) { s, _, c in
                guard c.words.count > 3 else { return .error("'commit ssl cert' expects a filename\n") }
                return Self.reply(s.runtime.tlsCertificates.commit(c.words[3], global: s.runtime.configuration.global.tls))
            },
            Spec(["abort", "ssl", "cert"], usage: "abort ssl cert <certfile>", help: "abort a transaction for a certificate file", level: .admin) { s, _, c in
                guard c.words.count > 3 else { return .error("'abort ssl cert' expects a filename\n") }
                return Self.reply(s.runtime.tlsCertificates.abort(c.words[3]))
            },
            Spec(["new", "ssl", "cert"], usage: "new ssl cert <certfile>", help: "create a new certificate file to be used in a crt-list or a directory", level: .admin) { s, _, c in
                guard c.words.count > 3 else { return .error("'new ssl cert' expects a filename\n") }
                return Self.reply(s.runtime.tlsCertificates.create(c.words[3]))
            },
            Spec(["del", "ssl", "cert"], usage: "del ssl cert <certfile>", help: "delete an unused certificate file", level: .admin) { s, _, c in
                guard c.words.count > 3 else { return .error("'del ssl cert' expects a certificate name\n") }
                return Self.reply(s.runtime.tlsCertificates.delete(c.words[3]))
            },
            Spec(["show", "ssl", "crt-list"], usage: "show ssl crt-list [-n] [<filename>]", help: "show the list of crt-lists or the content of a crt-list", level: .admin) { s, _, c in
                let store = s.runtime.tlsCertificates
                let arguments = c.words.dropFirst(3)
                let numbered = arguments.contains("-n")
                guard let given = arguments.first(where: { $0 != "-n" }) else {
                    return CLIReply(store.lists().map { $0 + "\n" }.joined())
                }
                let name = Self.listName(given)
                guard let entries = store.entries(of: name) else { return .error("didn't find the specified filename\n") }
                var text = "# \(name)\n"
                for entry in entries {
                    var line = entry.path + (numbered ? ":\(entry.line)" : "")
                    if !entry.optionWords.isEmpty { line += " [" + entry.optionWords.joined(separator: " ") + "]" }
                    if !entry.filters.isEmpty { line += " " + entry.filters.joined(separator: " ") }
                    text += line + "\n"
                }
                return CLIReply(text)
            },
            Spec(["add", "ssl", "crt-list"], usage: "add ssl crt-list <list> <cert> [opts]*", help: "add to crt-list file a line <cert> or a payload", level: .admin) { s, _, c in
                guard c.words.count > 4 || (c.words.count > 3 && c.payload != nil) else {
                    return .error("'add ssl crt-list' expects a filename and a certificate name\n")
                }
                let list = Self.listName(c.words[3])
                let text = c.payload.map { $0.split(separator: "\n").first.map(String.init) ?? "" } ?? c.words.dropFirst(4).joined(separator: " ")
                let parsed: ConfigParser.CrtListLine
                // As in haproxy, a line may only name CA and CRL files the configuration loaded:
                // nothing is read from disk at run time.
                let loaded = ConfigFiles(bundle: Self.loadedTrustFiles(s.runtime.configuration))
                switch ConfigParser.crtListLine(text, files: loaded, caBase: s.runtime.configuration.global.tls.caBase) {
                case .failure(let failure): return .error("Can't edit the crt-list: \(failure.message)\n")
                case .success(let line): parsed = line
                }
                return Self.reply(s.runtime.tlsCertificates.add(to: list, line: parsed, global: s.runtime.configuration.global.tls))
            },
            Spec(["del", "ssl", "crt-list"], usage: "del ssl crt-list <list> <cert[:line]>", help: "delete a line <cert> from crt-list file", level: .admin) { s, _, c in
                guard c.words.count > 4 else { return .error("'del ssl crt-list' expects a filename and a certificate name\n") }
                return Self.reply(s.runtime.tlsCertificates.remove(from: Self.listName(c.words[3]), certificate: c.words[4], global: s.runtime.configuration.global.tls))
            },
            Spec(["set", "ssl", "ocsp-response"], usage: "set ssl ocsp-response <resp|payload>", help: "update a certificate's OCSP Response from a base64-encode DER", level: .admin) { _, _, c in
                Self.setOCSPResponse(c.payload ?? (c.words.count > 3 ? c.words[3] : ""))
            },
            Spec(["show", "ssl", "ocsp-response"], usage: "show ssl ocsp-response [id]", help: "display the IDs of the OCSP responses used in memory, or the details of a single OCSP response", level: .admin) { _, _, c in
                guard c.words.count > 3, !c.words[3].isEmpty else { return CLIReply(Self.ocspList()) }
                return Self.ocspDetails(c.words[3])
            },
        ]
    }

    /// `set ssl ocsp-response`: a base64 DER response, checked as at load, replaces the
    /// response of the certificate it names.
    static func setOCSPResponse(_ text: String) -> CLIReply {
        guard text.contains(where: { $0 != "\r" && $0 != "\n" }) else {
            return .error("'set ssl ocsp-response' expects response in base64 encoding.\n")
        }
        guard let der = OCSPPayload.decode(text) else {
            return .error("'set ssl ocsp-response' received invalid base64 encoded response.\n")
        }
        let check = CertificateCheck.checkOCSP(der, certificateID: nil)
        if let refusal = check.refusal { return .error(refusal + ".\n") }
        guard let id = check.responseID, let staple = OCSPStaples.shared.existing(id) else {
            return .error("OCSP single response: Certificate ID does not match any certificate or issuer.\n")
        }
        staple.set(der, nextUpdate: check.nextUpdate)
        return CLIReply("OCSP Response updated!\n")
    }

    /// `show ssl ocsp-response`: every certificate ID with its hashes and serial.
    static func ocspList() -> String {
        var text = "# Certificate IDs\n"
        for staple in OCSPStaples.shared.all {
            text += "Certificate ID key : \(lowerHex(staple.certificateID))\n"
            var printed = [CChar](repeating: 0, count: 1024)
            let length = hasp_ocsp_print_cert_id(staple.certificateID, staple.certificateID.count, &printed, printed.count)
            guard length > 0 else { continue }
            let lines = TLSLibrary.string(printed).split(separator: "\n")
            text += " Certificate ID:\n" + lines.map { "   \($0)\n" }.joined()
        }
        return text
    }

    /// `show ssl ocsp-response <id>`: the response as `openssl ocsp -text` prints it.
    static func ocspDetails(_ key: String) -> CLIReply {
        // The tree's keys are 128 bytes: a longer one cannot name an entry.
        guard key.utf8.count <= 256 else { return .error("'show ssl ocsp-response' received a too big key.\n") }
        guard let id = parseHex(key), let staple = OCSPStaples.shared.existing(id) else {
            return .error("Certificate ID does not match any certificate.\n")
        }
        return CLIReply(printedResponse(staple.response ?? []))
    }

    /// OpenSSL's text for a response; empty lines get a space, as haproxy prints them, so that
    /// the CLI's blank line still ends the answer.
    static func printedResponse(_ der: [UInt8]) -> String {
        var printed = [CChar](repeating: 0, count: 65536)
        let length = hasp_ocsp_print_response(der, der.count, &printed, printed.count)
        // haproxy answers nothing when there is no response to print.
        guard length > 0 else { return "" }
        return TLSLibrary.string(printed).replacingOccurrences(of: "\n\n", with: "\n \n")
    }

    static func lowerHex(_ bytes: [UInt8]) -> String { hex(bytes).lowercased() }

    static func parseHex(_ text: String) -> [UInt8]? {
        let digits = Array(text.utf8)
        guard digits.count % 2 == 0 else { return nil }
        var bytes: [UInt8] = []
        bytes.reserveCapacity(digits.count / 2)
        for i in stride(from: 0, to: digits.count, by: 2) {
            guard let high = hexValue(digits[i]), let low = hexValue(digits[i + 1]) else { return nil }
            bytes.append(high << 4 | low)
        }
        return bytes
    }

    private static func hexValue(_ c: UInt8) -> UInt8? {
        switch c {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): return c - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): return c - UInt8(ascii: "a") + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): return c - UInt8(ascii: "A") + 10
        default: return nil
        }
    }

    /// The CA and CRL files of the running configuration, by path.
    static func loadedTrustFiles(_ configuration: Configuration) -> ConfigFiles.Bundle {
        var files: [String: [UInt8]] = [:]
        func add(_ contents: TLSFileContents?) { if let contents { files[contents.path] = contents.bytes } }
        for proxy in configuration.proxies {
            for bind in proxy.binds {
                add(bind.tls.caFile); add(bind.tls.crlFile); add(bind.tls.caVerifyFile)
                for certificate in bind.tls.certificates {
                    add(certificate.options?.caFile); add(certificate.options?.crlFile); add(certificate.options?.caVerifyFile)
                }
            }
            for server in proxy.servers { add(server.tls.caFile); add(server.tls.crlFile) }
        }
        return ConfigFiles.Bundle(files: files)
    }

    /// A crt-list or directory named on the CLI, without its trailing slashes (as haproxy
    /// strips them: `show ssl crt-list /etc/certs/` names the directory `/etc/certs`).
    static func listName(_ word: String) -> String {
        var name = Substring(word)
        while name.last == "/" { name = name.dropLast() }
        return String(name)
    }

    static func reply(_ result: Result<String, TLSCertificateStore.Failure>) -> CLIReply {
        switch result {
        case .success(let text): return CLIReply(text)
        case .failure(.message(let text)): return .error(text)
        }
    }

    /// `show ssl cert`: the ongoing transaction, then every certificate file.
    static func certificateList(_ store: TLSCertificateStore) -> String {
        var text = ""
        if let transaction = store.transaction { text += "# transaction\n*\(transaction.path)\n" }
        text += "# filename\n"
        for certificate in store.certificates() { text += certificate.path + "\n" }
        return text
    }

    /// `show ssl cert <file>` (or `*<file>`, the transaction's): HAProxy's detail lines.
    static func certificateDetails(_ store: TLSCertificateStore, _ name: String) -> CLIReply {
        // `<file>.ocsp`: the certificate's OCSP response, as `show ssl ocsp-response <id>`.
        if name.hasSuffix(".ocsp") {
            let base = String(name.dropLast(5))
            let pending = base.hasPrefix("*")
            let path = pending ? String(base.dropFirst()) : base
            let file = pending ? store.transaction.flatMap { $0.path == path ? $0.file : nil }
                : store.certificates().first { $0.path == path }?.file
            if let file {
                guard let ocsp = file.ocsp else { return CLIReply("") }
                if pending { return CLIReply(printedResponse(ocsp.fileBytes)) }
                guard let id = ocsp.responseID, let staple = OCSPStaples.shared.existing(id) else { return CLIReply("") }
                return CLIReply(printedResponse(staple.response ?? []))
            }
        }
        let pending = name.hasPrefix("*")
        let path = pending ? String(name.dropFirst()) : name
        let file: TLSCertificateFile?
        var used = false
        if pending {
            guard let transaction = store.transaction, transaction.path == path else {
                return .error("Can't display the certificate: Not found or the certificate is a bundle!\n")
            }
            file = transaction.file
        } else {
            guard let known = store.certificates().first(where: { $0.path == path }) else {
                return .error("Can't display the certificate: Not found or the certificate is a bundle!\n")
            }
            file = known.file
            used = known.used
        }
        var text = "Filename: \(name)\nStatus: \(file == nil || file!.pem.isEmpty ? "Empty" : used ? "Used" : "Unused")\n"
        guard let file, !file.pem.isEmpty, let cert = TLSLibrary.parseCertificate(file) else { return CLIReply(text) }
        defer { hasp_cert_free(cert) }
        let leaf = TLSLibrary.certificateFacts(hasp_cert_leaf(cert))
        text += "Serial: \(hex(leaf.serial))\n"
        text += "notBefore: \(leaf.notBeforePrinted)\nnotAfter: \(leaf.notAfterPrinted)\n"
        text += "Subject Alternative Name: \(leaf.dnsNames.map { "DNS:" + $0 }.joined(separator: ", "))\n"
        text += "Algorithm: \(leaf.keyAlgorithm)\n"
        text += "SHA1 FingerPrint: \(hex(leaf.sha1))\n"
        text += "Subject: \(leaf.subject)\nIssuer: \(leaf.issuer)\n"
        for chain in TLSLibrary.chainFacts(cert) {
            text += "Chain Subject: \(chain.subject)\nChain Issuer: \(chain.issuer)\n"
        }
        text += "OCSP Response Key: \(file.ocsp?.responseID.map(lowerHex) ?? "")\n"
        return CLIReply(text)
    }

    static func hex(_ bytes: [UInt8]) -> String { Hex.upper(bytes) }
}
