import CHaspTLS
import Shared

/// Small conversions between OpenSSL's C world and Swift values.
enum TLSLibrary {
    static func string(_ pointer: UnsafePointer<CChar>?) -> String? {
        guard let pointer else { return nil }
        return String(validatingCString: pointer)
    }

    static func string(_ buffer: [CChar]) -> String { CertificateCheck.text(buffer) }

    /// The oldest error of this thread's OpenSSL queue: its code, its reason ("http request")
    /// and OpenSSL's full line ("error:0A00009C:SSL routines::http request"). Clears the queue.
    static func takeError() -> (code: UInt, reason: String?, full: String?) {
        var reason = [CChar](repeating: 0, count: 256)
        var code: UInt = 0
        guard hasp_tls_take_reason(&reason, reason.count, &code) != 0 else { return (0, nil, nil) }
        var full = [CChar](repeating: 0, count: 256)
        ERR_error_string_n(code, &full, full.count)
        return (code, string(reason), string(full))
    }

    /// What fetches and `show ssl cert` tell of a certificate.
    static func certificateFacts(_ x509: OpaquePointer) -> CertificateFacts {
        var text = [CChar](repeating: 0, count: 4096)
        func read(_ call: (UnsafeMutablePointer<CChar>, Int) -> Int32) -> String {
            text.withUnsafeMutableBufferPointer { buffer in
                buffer[0] = 0
                _ = call(buffer.baseAddress!, buffer.count)
            }
            return string(text)
        }
        let subject = read { hasp_x509_subject(x509, $0, $1) }
        let issuer = read { hasp_x509_issuer(x509, $0, $1) }
        let commonNames = read { hasp_x509_common_names(x509, $0, $1) }.split(separator: "\n").map(String.init)
        let dnsNames = read { hasp_x509_dns_names(x509, $0, $1) }.split(separator: "\n").map(String.init)
        let signature = read { hasp_x509_sig_alg(x509, $0, $1) }
        let key = read { hasp_x509_key_alg(x509, $0, $1) }
        let keyName = read { hasp_x509_key_oid_name(x509, $0, $1) }
        var serial = [UInt8](repeating: 0, count: 64)
        let serialLength = Int(hasp_x509_serial(x509, &serial, serial.count))
        serial.removeLast(serial.count - serialLength)
        var sha1 = [UInt8](repeating: 0, count: 20)
        if hasp_x509_sha1(x509, &sha1) == 0 { sha1 = [] }
        var asn1 = [CChar](repeating: 0, count: 64), printed = [CChar](repeating: 0, count: 64)
        _ = hasp_x509_not_before(x509, &asn1, asn1.count, &printed, printed.count)
        let notBefore = string(asn1), notBeforePrinted = string(printed)
        _ = hasp_x509_not_after(x509, &asn1, asn1.count, &printed, printed.count)
        let notAfter = string(asn1), notAfterPrinted = string(printed)
        let size = Int(hasp_x509_der(x509, nil, 0))
        var der = [UInt8](repeating: 0, count: max(0, size))
        if size > 0 { _ = hasp_x509_der(x509, &der, der.count) }
        var facts = CertificateFacts(subject: subject, issuer: issuer, serial: serial, sha1: sha1, notBefore: notBefore,
                                notAfter: notAfter, notBeforePrinted: notBeforePrinted, notAfterPrinted: notAfterPrinted,
                                version: Int(hasp_x509_version(x509)), signatureAlgorithm: signature, keyAlgorithm: key,
                                der: der, commonNames: commonNames, dnsNames: dnsNames)
        facts.keyAlgorithmName = keyName
        return facts
    }

    /// ALPN protocol names in wire form (each preceded by its length).
    static func alpnWire(_ names: [String]) -> [UInt8] {
        var wire: [UInt8] = []
        for name in names where !name.isEmpty && name.utf8.count < 256 {
            wire.append(UInt8(name.utf8.count))
            wire.append(contentsOf: name.utf8)
        }
        return wire
    }

    /// A parsed certificate (leaf, chain, key) from PEM bytes. The caller frees it.
    static func parseCertificate(_ file: TLSCertificateFile) -> OpaquePointer? {
        CertificateCheck.parse(file.pem, key: file.key).0
    }

    /// Installs a certificate (leaf, chain, key) into a context; returns its leaf's facts, or
    /// HAProxy's reason when it does not load.
    static func use(_ file: TLSCertificateFile, in ctx: OpaquePointer) -> Result<CertificateFacts, TLSBuildError> {
        guard let cert = parseCertificate(file) else {
            return .failure(TLSBuildError(description: "unable to load certificate from file '\(file.path)'"))
        }
        defer { hasp_cert_free(cert) }
        var reason = [CChar](repeating: 0, count: 256)
        guard hasp_cert_use(ctx, cert, &reason, reason.count) == 1 else {
            return .failure(TLSBuildError(description: "inconsistencies between private key and certificate loaded '\(file.path)'"))
        }
        return .success(certificateFacts(hasp_cert_leaf(cert)))
    }

    /// The `HASP_NO_*` flags of a policy.
    static func flags(_ policy: TLSPolicy) -> Int32 {
        var flags: Int32 = 0
        for version in policy.disabledVersions {
            switch version {
            case .sslv3: flags |= HASP_NO_SSLV3
            case .tlsv10: flags |= HASP_NO_TLSV10
            case .tlsv11: flags |= HASP_NO_TLSV11
            case .tlsv12: flags |= HASP_NO_TLSV12
            case .tlsv13: flags |= HASP_NO_TLSV13
            }
        }
        if policy.noTickets == true { flags |= HASP_NO_TICKETS }
        if policy.preferClientCiphers == true { flags |= HASP_PREFER_CLIENT_CIPHERS }
        return flags
    }

    /// Applies a protocol policy to a context. Returns what the library refused, if anything.
    static func apply(_ policy: TLSPolicy, to ctx: OpaquePointer) -> String? {
        let range = policy.versionRange
        _ = hasp_ctx_set_versions(ctx, range.min.map { Int32($0.rawValue) } ?? -1, range.max.map { Int32($0.rawValue) } ?? -1)
        hasp_ctx_set_flags(ctx, flags(policy))
        defer { hasp_tls_clear_errors() }
        if let c = policy.ciphers, SSL_CTX_set_cipher_list(ctx, c) != 1 { return "unable to set SSL cipher list to '\(c)'" }
        if let c = policy.ciphersuites, SSL_CTX_set_ciphersuites(ctx, c) != 1 { return "unable to set TLS 1.3 cipher suites to '\(c)'" }
        if let c = policy.curves ?? policy.ecdhe, hasp_ctx_set_groups(ctx, c) != 1 { return "unable to set SSL curves list to '\(c)'" }
        return nil
    }

    /// Sets the DH parameters a PEM text holds; false when it holds none.
    static func setDHParameters(_ pem: [UInt8], on ctx: OpaquePointer) -> Bool {
        pem.withUnsafeBufferPointer { p in p.withMemoryRebound(to: CChar.self) { hasp_ctx_set_dh_pem(ctx, $0.baseAddress, $0.count) == 1 } }
    }

    static func loadTrust(_ file: TLSFileContents, into ctx: OpaquePointer, crl: Bool, sendNames: Bool) -> Bool {
        file.bytes.withUnsafeBufferPointer { p in
            p.withMemoryRebound(to: CChar.self) { c in
                crl ? hasp_ctx_add_crl_pem(ctx, c.baseAddress, c.count) > 0
                    : hasp_ctx_add_ca_pem(ctx, c.baseAddress, c.count, sendNames ? 1 : 0) > 0
            }
        }
    }
}

struct TLSBuildError: Error, CustomStringConvertible {
    var description: String
}

extension TLSLibrary {
    /// The facts of a parsed certificate's chain, in order.
    static func chainFacts(_ cert: OpaquePointer) -> [CertificateFacts] {
        (0..<Int(hasp_cert_chain_count(cert))).compactMap { index in
            hasp_cert_chain_at(cert, Int32(index)).map { certificateFacts($0) }
        }
    }
}
