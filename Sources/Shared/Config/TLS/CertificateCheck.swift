import CHaspTLS

/// Parse-time checks of TLS material with the same library that serves it, so `hasp -c` and a
/// reload refuse what the workers could not load.
public enum CertificateCheck {
    public enum Failure: Error, Equatable {
        case noCertificate
        case noKey
        case keyMismatch
    }

    /// Parses a PEM holding a certificate (and usually its chain and key); `key` is a
    /// companion key file's contents. Returns whether the PEM itself holds a key.
    public static func validate(_ pem: [UInt8], key: [UInt8]?) -> Result<Bool, Failure> {
        let (parsed, reason) = parse(pem, key: key)
        guard let cert = parsed else {
            if reason.contains("no certificate") { return .failure(.noCertificate) }
            if reason.contains("no private key") { return .failure(.noKey) }
            if reason.contains("inconsistent") || reason.contains("mismatch") { return .failure(.keyMismatch) }
            return .failure(.noCertificate)
        }
        defer { hasp_cert_free(cert) }
        return .success(hasp_cert_has_key(cert) != 0)
    }

    /// The library's parse of a certificate PEM (its key in it or in `key`): the certificate
    /// (freed with `hasp_cert_free`), or nil and the library's reason.
    public static func parse(_ pem: [UInt8], key: [UInt8]?) -> (OpaquePointer?, reason: String) {
        var reason = [CChar](repeating: 0, count: 256)
        let cert: OpaquePointer? = pem.withUnsafeBufferPointer { p in
            p.withMemoryRebound(to: CChar.self) { c in
                (key ?? []).withUnsafeBufferPointer { k in
                    k.withMemoryRebound(to: CChar.self) { kc in
                        hasp_cert_parse(c.baseAddress, c.count, key == nil ? nil : kc.baseAddress, kc.count, &reason, reason.count)
                    }
                }
            }
        }
        return (cert, text(reason))
    }

    /// A NUL-terminated C buffer as text.
    public static func text(_ buffer: [CChar]) -> String {
        String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    public enum OCSPIssuerFailure: Error, Equatable {
        /// Neither the chain nor a `.issuer` file holds the certificate's issuer.
        case noIssuer
        /// The `.issuer` file holds another certificate.
        case notAnIssuer
    }

    /// The OCSP certificate ID of a certificate (PEM, with its key or `key`) and its issuer,
    /// found in its chain or else in `issuer` (a `.issuer` file's PEM).
    public static func ocspCertificateID(_ pem: [UInt8], key: [UInt8]?, issuer: [UInt8]?) -> Result<[UInt8], OCSPIssuerFailure> {
        guard let cert = parse(pem, key: key).0 else { return .failure(.noIssuer) }
        defer { hasp_cert_free(cert) }
        var id = [UInt8](repeating: 0, count: 256)
        let length = (issuer ?? []).withUnsafeBufferPointer { i in
            i.withMemoryRebound(to: CChar.self) { ic in
                hasp_ocsp_cert_id(cert, issuer == nil ? nil : ic.baseAddress, ic.count, &id, id.count)
            }
        }
        switch length {
        case -2: return .failure(.notAnIssuer)
        case ..<1: return .failure(.noIssuer)
        default: return .success(Array(id.prefix(Int(length))))
        }
    }

    /// What a DER OCSP response holds once checked.
    public struct OCSPCheck: Equatable {
        /// nil when usable, else haproxy's reason.
        public var refusal: String?
        public var nextUpdate: Int64
        /// The certificate ID inside the response, when it can be read.
        public var responseID: [UInt8]?
    }

    /// Checks an OCSP response as haproxy does, against `certificateID` when given.
    public static func checkOCSP(_ der: [UInt8], certificateID: [UInt8]?) -> OCSPCheck {
        var reason = [CChar](repeating: 0, count: 256)
        var id = [UInt8](repeating: 0, count: 256)
        var idLength: Int32 = 0
        var nextUpdate: Int64 = 0
        let ok = der.withUnsafeBufferPointer { d in
            (certificateID ?? []).withUnsafeBufferPointer { c in
                hasp_ocsp_check(d.baseAddress, d.count, certificateID == nil ? nil : c.baseAddress, c.count,
                                &id, id.count, &idLength, &nextUpdate, &reason, reason.count)
            }
        }
        let refusal = ok == 1 ? nil : text(reason)
        return OCSPCheck(refusal: refusal, nextUpdate: nextUpdate, responseID: idLength > 0 ? Array(id.prefix(Int(idLength))) : nil)
    }

    /// Whether the library accepts these lists (nil: not set). Returns the first refused one.
    public enum PolicyRefusal: Equatable {
        case ciphers(String), ciphersuites(String), curves(String), ecdhe(String)
    }

    public static func check(_ policy: TLSPolicy, server: Bool) -> PolicyRefusal? {
        guard let ctx = server ? hasp_ctx_new_server() : hasp_ctx_new_client() else { return nil }
        defer { SSL_CTX_free(ctx) }
        defer { hasp_tls_clear_errors() }
        if let c = policy.ciphers, SSL_CTX_set_cipher_list(ctx, c) != 1 { return .ciphers(c) }
        if let c = policy.ciphersuites, SSL_CTX_set_ciphersuites(ctx, c) != 1 { return .ciphersuites(c) }
        if let c = policy.curves, hasp_ctx_set_groups(ctx, c) != 1 { return .curves(c) }
        if policy.curves == nil, let c = policy.ecdhe, hasp_ctx_set_groups(ctx, c) != 1 { return .ecdhe(c) }
        return nil
    }

    /// Whether PEM bytes hold at least one certificate or CRL (`ca-file`, `crl-file`).
    public static func countCertificates(_ pem: [UInt8], crl: Bool) -> Int {
        guard let ctx = hasp_ctx_new_server() else { return 0 }
        defer { SSL_CTX_free(ctx) }
        return Int(pem.withUnsafeBufferPointer { p in
            p.withMemoryRebound(to: CChar.self) { c in
                crl ? hasp_ctx_add_crl_pem(ctx, c.baseAddress, c.count) : hasp_ctx_add_ca_pem(ctx, c.baseAddress, c.count, 0)
            }
        })
    }

    /// Whether a PEM text holds DH parameters.
    public static func hasDHParameters(_ pem: [UInt8]) -> Bool {
        pem.withUnsafeBufferPointer { p in p.withMemoryRebound(to: CChar.self) { hasp_ctx_set_dh_pem(nil, $0.baseAddress, $0.count) == 1 } }
    }

    public static var libraryVersion: String {
        guard let text = hasp_tls_version_text() else { return "" }
        return String(validatingCString: text) ?? ""
    }
    public static var libraryVersionNumber: UInt { UInt(hasp_tls_version_number()) }
}
