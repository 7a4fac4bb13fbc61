/// What a TLS connection negotiated, as the `ssl_fc_*`, `ssl_c_*`, `ssl_f_*` and `ssl_bc_*`
/// fetches and the log variables read it. Filled by the connection's TLS handler once its
/// handshake ends, on the connection's event loop, and read there.
public final class TLSSessionFacts {
    public var handshakeDone = false
    /// The SNI the client sent (server side) or that was sent (client side).
    public var serverName: String? = nil
    /// `TLSv1.3`, `TLSv1.2`...
    public var protocolName: String? = nil
    public var cipher: String? = nil
    public var cipherBits = 0
    public var alpn: String? = nil
    public var resumed = false
    /// The first OpenSSL error of a failed handshake (`ssl_fc_err`) and its text.
    public var errorCode: UInt = 0
    public var errorText: String? = nil
    /// The peer's certificate (client certificates on a frontend connection).
    public var peerCertificate: CertificateFacts? = nil
    /// This side's certificate (`ssl_f_*`).
    public var ownCertificate: CertificateFacts? = nil
    /// `ssl_c_verify`: the verification result (0 = ok).
    public var verifyResult = 0
    /// `ssl_c_err` / `ssl_c_ca_err`: the first error on the peer certificate and on its chain.
    public var certificateError = 0
    public var chainError = 0
    public var chainErrorDepth = 0

    public init() {}
}

/// Facts of one X509 certificate.
public struct CertificateFacts: Sendable, Equatable {
    /// One-line forms ("/C=FR/CN=a.test").
    public var subject: String
    public var issuer: String
    public var serial: [UInt8]
    public var sha1: [UInt8]
    /// ASN1 texts ("260101000000Z") and printed forms ("Jan  1 00:00:00 2026 GMT").
    public var notBefore: String
    public var notAfter: String
    public var notBeforePrinted: String
    public var notAfterPrinted: String
    public var version: Int
    public var signatureAlgorithm: String
    /// "EC256", "RSA2048" (`show ssl cert`), and the key's OID name (`ssl_c_key_alg`).
    public var keyAlgorithm: String
    public var keyAlgorithmName: String = ""
    public var der: [UInt8]
    public var commonNames: [String]
    public var dnsNames: [String]

    public init(subject: String, issuer: String, serial: [UInt8], sha1: [UInt8], notBefore: String, notAfter: String,
                notBeforePrinted: String, notAfterPrinted: String, version: Int, signatureAlgorithm: String,
                keyAlgorithm: String, der: [UInt8], commonNames: [String], dnsNames: [String]) {
        self.subject = subject
        self.issuer = issuer
        self.serial = serial
        self.sha1 = sha1
        self.notBefore = notBefore
        self.notAfter = notAfter
        self.notBeforePrinted = notBeforePrinted
        self.notAfterPrinted = notAfterPrinted
        self.version = version
        self.signatureAlgorithm = signatureAlgorithm
        self.keyAlgorithm = keyAlgorithm
        self.der = der
        self.commonNames = commonNames
        self.dnsNames = dnsNames
    }
}
