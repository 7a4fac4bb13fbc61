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
                return Self.reply(s.runtime.tlsCertificates.set(c.words[3], pem: Array((payload + "\n").utf8)))
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
                guard let name = arguments.first(where: { $0 != "-n" }) else {
                    return CLIReply(store.lists().map { $0 + "\n" }.joined())
                }
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
                let list = c.words[3]
                let text = c.payload.map { $0.split(separator: "\n").first.map(String.init) ?? "" } ?? c.words.dropFirst(4).joined(separator: " ")
                let parsed: ConfigParser.CrtListLine
                switch ConfigParser.crtListLine(text, files: ConfigFiles(), caBase: s.runtime.configuration.global.tls.caBase) {
                case .failure(let failure): return .error("\(failure.message)\n")
                case .success(let line): parsed = line
                }
                return Self.reply(s.runtime.tlsCertificates.add(to: list, line: parsed, global: s.runtime.configuration.global.tls))
            },
            Spec(["del", "ssl", "crt-list"], usage: "del ssl crt-list <list> <cert[:line]>", help: "delete a line <cert> from crt-list file", level: .admin) { s, _, c in
                guard c.words.count > 4 else { return .error("'del ssl crt-list' expects a filename and a certificate name\n") }
                return Self.reply(s.runtime.tlsCertificates.remove(from: c.words[3], certificate: c.words[4], global: s.runtime.configuration.global.tls))
            },
        ]
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
        text += "OCSP Response Key: \n"
        return CLIReply(text)
    }

    static func hex(_ bytes: [UInt8]) -> String {
        let digits = Array("0123456789ABCDEF")
        var text = ""
        for b in bytes {
            text.append(digits[Int(b >> 4)])
            text.append(digits[Int(b & 15)])
        }
        return text
    }
}
