/// The TLS fetches: the client connection (`ssl_fc_*`), its client certificate (`ssl_c_*`),
/// the frontend's own certificate (`ssl_f_*`), the server connection (`ssl_bc_*`) and the
/// certificate the server presented (`ssl_s_*`).
extension FetchTable {
    static let tlsFetches: [FetchDefinition] = frontConnectionFetches
        + certificateFetches(prefix: "ssl_c", .layer4) { $0.frontTLS?.peerCertificate }
        + certificateFetches(prefix: "ssl_f", .layer4) { $0.frontTLS?.ownCertificate }
        + backConnectionFetches
        + certificateFetches(prefix: "ssl_s", .server) { $0.backTLS?.peerCertificate }

    static func front(_ name: String, _ output: SampleType, _ read: @escaping @Sendable (TLSSessionFacts) -> SampleValue?) -> FetchDefinition {
        FetchDefinition(name, output, .layer4) { c, _, _ in
            guard let tls = c.frontTLS, let value = read(tls) else { return .none }
            return .one(value)
        }
    }

    static func back(_ name: String, _ output: SampleType, _ read: @escaping @Sendable (TLSSessionFacts) -> SampleValue?) -> FetchDefinition {
        FetchDefinition(name, output, .server) { c, _, _ in
            guard let tls = c.backTLS, let value = read(tls) else { return .none }
            return .one(value)
        }
    }

    static let frontConnectionFetches: [FetchDefinition] = [
        FetchDefinition("ssl_fc", .bool, .layer4) { c, _, _ in .one(.bool(c.frontTLS != nil)) },
        front("ssl_fc_sni", .string) { $0.serverName.map { .string($0) } },
        FetchDefinition("ssl_fc_has_sni", .bool, .layer4) { c, _, _ in .one(.bool(c.frontTLS?.serverName != nil)) },
        front("ssl_fc_protocol", .string) { $0.protocolName.map { .string($0) } },
        front("ssl_fc_cipher", .string) { $0.cipher.map { .string($0) } },
        front("ssl_fc_alpn", .string) { $0.alpn.map { .string($0) } },
        front("ssl_fc_use_keysize", .int) { .int(Int64($0.cipherBits)) },
        front("ssl_fc_alg_keysize", .int) { .int(Int64($0.cipherBits)) },
        // HAProxy answers 0 on a plain connection here (`option httpslog` prints it).
        FetchDefinition("ssl_fc_is_resumed", .bool, .layer4) { c, _, _ in .one(.bool(c.frontTLS?.resumed ?? false)) },
        front("ssl_fc_session_reused", .bool) { .bool($0.resumed) },
        front("ssl_fc_has_crt", .bool) { .bool($0.peerCertificate != nil) },
        front("ssl_fc_err", .int) { .int(Int64($0.errorCode & 0xFF_FFFF)) },
        front("ssl_fc_err_str", .string) { $0.errorText.map { .string($0) } },
        front("ssl_c_used", .bool) { .bool($0.peerCertificate != nil) },
        front("ssl_c_verify", .int) { .int(Int64($0.verifyResult)) },
        front("ssl_c_err", .int) { .int(Int64($0.certificateError)) },
        front("ssl_c_ca_err", .int) { .int(Int64($0.chainError)) },
        front("ssl_c_ca_err_depth", .int) { .int(Int64($0.chainErrorDepth)) },
    ]

    static let backConnectionFetches: [FetchDefinition] = [
        FetchDefinition("ssl_bc", .bool, .server) { c, _, _ in .one(.bool(c.backTLS != nil)) },
        back("ssl_bc_protocol", .string) { $0.protocolName.map { .string($0) } },
        back("ssl_bc_cipher", .string) { $0.cipher.map { .string($0) } },
        back("ssl_bc_alpn", .string) { $0.alpn.map { .string($0) } },
        back("ssl_bc_use_keysize", .int) { .int(Int64($0.cipherBits)) },
        back("ssl_bc_alg_keysize", .int) { .int(Int64($0.cipherBits)) },
        back("ssl_bc_is_resumed", .bool) { .bool($0.resumed) },
        back("ssl_bc_err", .int) { .int(Int64($0.errorCode & 0xFF_FFFF)) },
    ]

    /// `ssl_c_*` (the client's certificate), `ssl_f_*` (the frontend's own) or `ssl_s_*` (the
    /// server's), read by `cert` where `validity` says.
    static func certificateFetches(prefix: String, _ validity: SampleUse,
                                   _ cert: @escaping @Sendable (SampleContext) -> CertificateFacts?) -> [FetchDefinition] {
        func fetch(_ suffix: String, _ output: SampleType, _ read: @escaping @Sendable (CertificateFacts) -> SampleValue) -> FetchDefinition {
            FetchDefinition(prefix + suffix, output, validity) { c, _, _ in cert(c).map { .one(read($0)) } ?? .none }
        }
        func name(_ suffix: String, issuer: Bool) -> FetchDefinition {
            FetchDefinition(prefix + suffix, [.string, .int], required: 0, .string, validity) { c, a, _ in
                guard let facts = cert(c) else { return .none }
                let line = issuer ? facts.issuer : facts.subject
                guard let entry = a.first?.string else { return .one(.string(line)) }
                let occurrence = Int(a.count > 1 ? a[1].int ?? 1 : 1)
                return distinguishedNameEntry(line, entry, occurrence: occurrence).map { .one(.string($0)) } ?? .none
            }
        }
        return [
            name("_s_dn", issuer: false),
            name("_i_dn", issuer: true),
            fetch("_serial", .binary) { .binary($0.serial) },
            fetch("_sha1", .binary) { .binary($0.sha1) },
            fetch("_notafter", .string) { .string($0.notAfter) },
            fetch("_notbefore", .string) { .string($0.notBefore) },
            fetch("_version", .int) { .int(Int64($0.version)) },
            fetch("_sig_alg", .string) { .string($0.signatureAlgorithm) },
            fetch("_key_alg", .string) { .string($0.keyAlgorithmName) },
            fetch("_der", .binary) { .binary($0.der) },
        ]
    }

    /// One entry of a one-line distinguished name ("/C=FR/O=x/CN=a.test"): the `occurrence`-th
    /// value of `name` (negative counts from the end).
    static func distinguishedNameEntry(_ line: String, _ name: String, occurrence: Int) -> String? {
        let values = line.split(separator: "/").compactMap { part -> String? in
            guard let eq = part.firstIndex(of: "="), part[..<eq] == name else { return nil }
            return String(part[part.index(after: eq)...])
        }
        guard !values.isEmpty else { return nil }
        let index = occurrence > 0 ? occurrence - 1 : values.count + occurrence
        return values.indices.contains(index) ? values[index] : nil
    }
}
