/// TLS protocol versions as configurations name them (`ssl-min-ver TLSv1.2`).
public enum TLSVersion: Int, Sendable, Comparable, CaseIterable {
    case sslv3 = 0x300, tlsv10 = 0x301, tlsv11 = 0x302, tlsv12 = 0x303, tlsv13 = 0x304

    public init?(name: String) {
        guard let v = Self.allCases.first(where: { $0.name == name }) else { return nil }
        self = v
    }

    public var name: String {
        switch self {
        case .sslv3: "SSLv3"
        case .tlsv10: "TLSv1.0"
        case .tlsv11: "TLSv1.1"
        case .tlsv12: "TLSv1.2"
        case .tlsv13: "TLSv1.3"
        }
    }

    /// The `no-...` and `force-...` keyword suffix (`no-tlsv11`).
    public var keywordSuffix: String {
        switch self {
        case .sslv3: "sslv3"
        case .tlsv10: "tlsv10"
        case .tlsv11: "tlsv11"
        case .tlsv12: "tlsv12"
        case .tlsv13: "tlsv13"
        }
    }

    public static func < (a: Self, b: Self) -> Bool { a.rawValue < b.rawValue }
}

/// The protocol policy shared by `bind` lines, `server` lines and the global
/// `ssl-default-bind-*` / `ssl-default-server-*` defaults. Nil means "not said here".
public struct TLSPolicy: Sendable, Equatable {
    public var minVersion: TLSVersion? = nil
    public var maxVersion: TLSVersion? = nil
    /// `no-sslv3` ... `no-tlsv13`.
    public var disabledVersions: Set<TLSVersion> = []
    /// `force-sslv3` ... `force-tlsv13`: this version only.
    public var forcedVersion: TLSVersion? = nil
    public var ciphers: String? = nil
    public var ciphersuites: String? = nil
    /// `curves` (a colon list); `ecdhe` names one curve.
    public var curves: String? = nil
    public var ecdhe: String? = nil
    public var noTickets: Bool? = nil
    public var preferClientCiphers: Bool? = nil

    public init() {}

    /// This policy with what `defaults` says wherever this one says nothing.
    public func over(_ defaults: TLSPolicy) -> TLSPolicy {
        var p = self
        if p.minVersion == nil { p.minVersion = defaults.minVersion }
        if p.maxVersion == nil { p.maxVersion = defaults.maxVersion }
        if p.disabledVersions.isEmpty { p.disabledVersions = defaults.disabledVersions }
        if p.forcedVersion == nil { p.forcedVersion = defaults.forcedVersion }
        if p.ciphers == nil { p.ciphers = defaults.ciphers }
        if p.ciphersuites == nil { p.ciphersuites = defaults.ciphersuites }
        if p.curves == nil { p.curves = defaults.curves }
        if p.ecdhe == nil { p.ecdhe = defaults.ecdhe }
        if p.noTickets == nil { p.noTickets = defaults.noTickets }
        if p.preferClientCiphers == nil { p.preferClientCiphers = defaults.preferClientCiphers }
        return p
    }

    /// The versions this policy allows, as a min/max pair (nil: OpenSSL's own bound).
    public var versionRange: (min: TLSVersion?, max: TLSVersion?) {
        if let forced = forcedVersion { return (forced, forced) }
        var low = minVersion
        var high = maxVersion
        // `no-tlsv1x` options trim the ends of the range, as the library applies them.
        let all = TLSVersion.allCases
        if !disabledVersions.isEmpty {
            let allowed = all.filter { version in
                !disabledVersions.contains(version) && (low.map { version >= $0 } ?? true) && (high.map { version <= $0 } ?? true)
            }
            if let first = allowed.first, let last = allowed.last {
                if low == nil || first > low! { low = first }
                if high == nil || last < high! { high = last }
            }
        }
        return (low, high)
    }
}

public enum TLSVerifyMode: String, Sendable, Equatable {
    case none, optional, required
}

/// Certificate verification errors to accept (`ca-ignore-err`, `crt-ignore-err`).
public struct TLSIgnoredErrors: Sendable, Equatable {
    public var all = false
    public var codes: [Int32] = []
    public init() {}
}

/// A certificate as loaded at parse time: its PEM bytes (and its key's, when the key is in a
/// companion `.key` file), so that a worker builds its contexts without reading the disk.
public struct TLSCertificateFile: Sendable, Equatable {
    /// The path the configuration names, which `show ssl cert` and the runtime API use.
    public var path: String
    public var pem: [UInt8]
    public var key: [UInt8]?
    /// Options of its `crt-list` line, and its SNI filters (empty: the names in the
    /// certificate). A filter starting with `!` excludes a name.
    public var options: TLSBindOptions? = nil
    public var filters: [String] = []
    /// The crt-list (or directory) the certificate came from, its line there, and the
    /// `[options]` words as written (`show ssl crt-list`).
    public var list: String? = nil
    public var line = 0
    public var optionWords: [String] = []
    /// Its `.ocsp` companion, when there is one.
    public var ocsp: TLSOCSPFile? = nil

    public init(path: String, pem: [UInt8], key: [UInt8]? = nil) {
        self.path = path
        self.pem = pem
        self.key = key
    }
}

/// A certificate's `.ocsp` companion (a DER OCSP response), checked as haproxy does: the
/// certificate's issuer is known (its chain, else a `.issuer` file), so the response can be
/// matched to the certificate.
public struct TLSOCSPFile: Sendable, Equatable {
    /// The OCSP certificate ID of the certificate and its issuer: the key under which the
    /// response is kept and replaced (`set ssl ocsp-response`).
    public var certificateID: [UInt8]
    /// The file's bytes, and the `.issuer` file's (checked again when the certificate changes).
    public var fileBytes: [UInt8]
    public var issuer: [UInt8]?
    /// The file's response when usable, and the time of its next update; nil when refused.
    public var response: [UInt8]? = nil
    public var nextUpdate: Int64 = 0
    /// The certificate ID inside the file's response, usable or not (`show ssl cert`).
    public var responseID: [UInt8]? = nil
    /// Which load this is (the configuration's, or a transaction's): contexts built again from
    /// the same load leave a staple alone, a new load replaces its response. Not part of `==`.
    public var load = UInt64.random(in: 1...UInt64.max)

    public static func == (a: TLSOCSPFile, b: TLSOCSPFile) -> Bool {
        a.certificateID == b.certificateID && a.fileBytes == b.fileBytes && a.issuer == b.issuer
            && a.response == b.response && a.nextUpdate == b.nextUpdate && a.responseID == b.responseID
    }

    /// Checks a response file for a certificate. A failure is haproxy's alert (the load or the
    /// update fails); `warning` is its warning for a response that is kept out of service.
    public static func load(for certificate: TLSCertificateFile, bytes: [UInt8], issuer: [UInt8]?)
        -> Result<(ocsp: TLSOCSPFile, warning: String?), TLSOCSPFailure> {
        switch CertificateCheck.ocspCertificateID(certificate.pem, key: certificate.key, issuer: issuer) {
        case .failure(.notAnIssuer):
            return .failure(TLSOCSPFailure(message: " '\(certificate.path).issuer' is not an issuer'."))
        case .failure(.noIssuer):
            return .failure(TLSOCSPFailure(message: " '\(certificate.path).ocsp' is present and activates OCSP but it is impossible to compute the OCSP certificate ID (maybe the issuer could not be found)'."))
        case .success(let id):
            var ocsp = TLSOCSPFile(certificateID: id, fileBytes: bytes, issuer: issuer)
            let check = CertificateCheck.checkOCSP(bytes, certificateID: id)
            ocsp.responseID = check.responseID
            if let refusal = check.refusal { return .success((ocsp, "Loading: \(refusal). Content will be ignored.")) }
            ocsp.response = bytes
            ocsp.nextUpdate = check.nextUpdate
            return .success((ocsp, nil))
        }
    }
}

public struct TLSOCSPFailure: Error, Equatable {
    public var message: String
}

/// Options a `crt-list` line may override for its certificate.
public struct TLSBindOptions: Sendable, Equatable {
    public var policy = TLSPolicy()
    public var alpn: [String]? = nil
    public var verify: TLSVerifyMode? = nil
    public var caFile: TLSFileContents? = nil
    public var caVerifyFile: TLSFileContents? = nil
    public var crlFile: TLSFileContents? = nil
    public init() {}
}

/// A file read at parse time: its path, for messages, and its bytes.
public struct TLSFileContents: Sendable, Equatable {
    public var path: String
    public var bytes: [UInt8]
    public init(path: String, bytes: [UInt8]) {
        self.path = path
        self.bytes = bytes
    }
}

/// The ticket keys of `tls-ticket-keys`: a ring of three (name, AES key, HMAC key) records,
/// and the one that encrypts; every one decrypts.
public struct TLSTicketKeys: Sendable, Equatable {
    public static let ringSize = 3
    public var path: String
    public var ring: [[UInt8]]
    public var encrypting: Int
    public init(path: String, ring: [[UInt8]], encrypting: Int) {
        self.path = path
        self.ring = ring
        self.encrypting = encrypting
    }
}

/// `bind ... ssl`.
public struct BindTLSSettings: Sendable, Equatable {
    public var enabled = false
    /// `crt` and `crt-list` entries, in order: the first certificate is the default one.
    public var certificates: [TLSCertificateFile] = []
    /// The `crt`/`crt-list` arguments as given (`show ssl crt-list`).
    public var crtLists: [String] = []
    public var strictSNI = false
    public var policy = TLSPolicy()
    /// `alpn` as configured (nil: none offered, as HAProxy 2.6 does by default).
    public var alpn: [String]? = nil
    public var noALPN = false
    public var verify: TLSVerifyMode? = nil
    public var caFile: TLSFileContents? = nil
    public var caVerifyFile: TLSFileContents? = nil
    /// `tls-ticket-keys`: the keys session tickets are sealed with (nil: random per context).
    public var ticketKeys: TLSTicketKeys? = nil
    public var crlFile: TLSFileContents? = nil
    public var caIgnore = TLSIgnoredErrors()
    public var crtIgnore = TLSIgnoredErrors()
    public var allow0RTT = false

    public init() {}
}

/// `server ... ssl` (and `default-server`).
public struct ServerTLSSettings: Sendable, Equatable {
    public var enabled = false
    public var verify: TLSVerifyMode? = nil
    public var caFile: TLSFileContents? = nil
    /// `ca-file @system-ca`.
    public var systemCA = false
    public var crlFile: TLSFileContents? = nil
    /// `sni <expression>`, as written.
    public var sni: String? = nil
    public var verifyHost: String? = nil
    /// `crt`: the client certificate presented to the server.
    public var certificate: TLSCertificateFile? = nil
    public var alpn: [String]? = nil
    public var policy = TLSPolicy()
    public var noSSLReuse = false
    /// `check-ssl`: health checks over TLS even when traffic is not.
    public var checkSSL = false
    public var checkSNI: String? = nil
    public var checkALPN: [String]? = nil

    public init() {}
}

/// The global TLS settings.
public struct GlobalTLSSettings: Sendable, Equatable {
    public var bindDefaults = TLSPolicy()
    public var serverDefaults = TLSPolicy()
    public var caBase: String? = nil
    public var crtBase: String? = nil
    /// `tune.ssl.default-dh-param`: DHE allowed up to this size (nil: DHE off without DH params).
    public var defaultDHParam: Int? = nil
    /// `ssl-dh-param-file`: DH parameters for every bind whose certificate file has none.
    public var dhParams: TLSFileContents? = nil
    /// `tune.ssl.cachesize` (sessions; 0 = off) and `tune.ssl.lifetime` (seconds).
    public var cacheSize = 20_000
    public var lifetimeSeconds = 300

    public init() {}
}
