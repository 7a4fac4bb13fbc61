import CHaspTLS
import NIOConcurrencyHelpers
import Shared

/// The TLS side of one `bind ... ssl` line: one OpenSSL context per certificate, built once
/// (never per connection), and the SNI table that picks among them during the handshake.
/// Immutable once built; a runtime certificate update builds a new one and swaps it in the
/// bind's `TLSBindSlot`, so handshakes in progress keep the one they started with.
final class TLSServerContext: @unchecked Sendable {
    struct Entry {
        let ctx: OpaquePointer
        let file: TLSCertificateFile
        let facts: CertificateFacts
        /// The names this certificate answers: its SNI filters, else its CN and DNS SANs.
        let names: [String]
        let excluded: Set<String>
        let policy: TLSPolicy?
        /// Its OCSP staple, when a `.ocsp` file turned stapling on.
        let staple: OCSPStaple?
        let keyKind: KeyKind
    }

    let entries: [Entry]
    let strictSNI: Bool
    /// Every entry answering a name, in the order written.
    private let exact: [String: [Int]]
    /// `*.example.com` entries, by what follows the first label (`example.com`).
    private let wildcard: [String: [Int]]

    var defaultContext: OpaquePointer { entries[0].ctx }

    /// What signs with a certificate's key: haproxy picks among the certificates of a name by
    /// the signatures the client accepts.
    enum KeyKind {
        case ecdsa, rsa, other

        init(_ facts: CertificateFacts) {
            switch facts.keyAlgorithmName {
            case "id-ecPublicKey": self = .ecdsa
            case "rsaEncryption": self = .rsa
            default: self = .other
            }
        }
    }

    private init(entries: [Entry], strictSNI: Bool) {
        self.entries = entries
        self.strictSNI = strictSNI
        var exact: [String: [Int]] = [:]
        var wildcard: [String: [Int]] = [:]
        for (index, entry) in entries.enumerated() {
            for name in entry.names where name != "*" {
                let lower = name.asciiLowercased
                if lower.hasPrefix("*.") {
                    wildcard[String(lower.dropFirst(2)), default: []].append(index)
                } else {
                    exact[lower, default: []].append(index)
                }
            }
        }
        self.exact = exact
        self.wildcard = wildcard
    }

    deinit {
        for entry in entries { SSL_CTX_free(entry.ctx) }
    }

    /// The certificate for a server name, as haproxy 2.6 chooses it: the first ECDSA, RSA and
    /// other certificate among those naming it exactly, then among the wildcards covering its
    /// first label (unless their line excludes the name); then ECDSA if the client can use it,
    /// else RSA if it can, else the other kind, else whatever was found. Nil when nothing names it.
    /// `clientSignatures` is read only when certificates of several kinds name the server.
    func entryIndex(for serverName: String?,
                    clientSignatures: @autoclosure () -> Int32 = HASP_SIG_RSA | HASP_SIG_ECDSA) -> Int? {
        guard let serverName, !serverName.isEmpty else { return nil }
        let name = serverName.asciiLowercased
        var ecdsa: Int?, rsa: Int?, other: Int?
        func consider(_ index: Int) {
            switch entries[index].keyKind {
            case .ecdsa: if ecdsa == nil { ecdsa = index }
            case .rsa: if rsa == nil { rsa = index }
            case .other: if other == nil { other = index }
            }
        }
        for index in exact[name] ?? [] { consider(index) }
        if let dot = name.firstIndex(of: ".") {
            for index in wildcard[String(name[name.index(after: dot)...])] ?? [] where !entries[index].excluded.contains(name) {
                consider(index)
            }
        }
        let kinds = (ecdsa == nil ? 0 : 1) + (rsa == nil ? 0 : 1) + (other == nil ? 0 : 1)
        guard kinds > 1 else { return ecdsa ?? rsa ?? other }
        let signatures = clientSignatures()
        if signatures & HASP_SIG_ECDSA != 0, let ecdsa { return ecdsa }
        if signatures & HASP_SIG_RSA != 0, let rsa { return rsa }
        return other ?? ecdsa ?? rsa
    }

    /// Called by OpenSSL while reading the ClientHello. Returns 1 to refuse the handshake.
    fileprivate func select(_ ssl: OpaquePointer, _ serverName: String?) -> Int32 {
        guard let index = entryIndex(for: serverName, clientSignatures: hasp_ssl_client_signatures(ssl)) else {
            return strictSNI ? 1 : 0
        }
        guard index != 0 else { return 0 }
        let entry = entries[index]
        SSL_set_SSL_CTX(ssl, entry.ctx)
        hasp_ssl_adopt_verify(ssl, entry.ctx)
        // The connection took its versions and ciphers from the default context: a crt-list
        // line's own policy replaces them (this runs before they are chosen).
        if let policy = entry.policy {
            let range = policy.versionRange
            _ = hasp_ssl_set_policy(ssl, range.min.map { Int32($0.rawValue) } ?? -1, range.max.map { Int32($0.rawValue) } ?? -1,
                                    TLSLibrary.flags(policy), policy.ciphers, policy.ciphersuites, policy.curves ?? policy.ecdhe)
        }
        return 0
    }

    /// The facts of the certificate a context serves (`ssl_f_*`).
    func facts(for ctx: OpaquePointer?) -> CertificateFacts? {
        entries.first { $0.ctx == ctx }?.facts ?? entries.first?.facts
    }

    /// Builds every context of a bind. Errors name the bind and what failed, as HAProxy does.
    static func build(_ bind: BindSettings, proxy: String, global: GlobalTLSSettings) throws(TLSBuildError) -> TLSServerContext {
        hasp_tls_init()
        let at = "for bind '\(bind.text)' at [\(bind.location)]"
        guard !bind.tls.certificates.isEmpty else {
            throw TLSBuildError(description: "Proxy '\(proxy)': no SSL certificate specified \(at) (use 'crt').")
        }
        let basePolicy = bind.tls.policy.over(global.bindDefaults)
        // Sessions are cached per listener: the id context says which. With shared ticket keys
        // it is HAProxy's own ("haproxy"), so that a ticket sealed by one node (hasp or haproxy)
        // of a farm, or by another bind with the same keys, resumes on this one.
        let sessionContext = bind.tls.ticketKeys != nil ? Array("haproxy".utf8)
            : Array("hasp:\(proxy):\(bind.text)".utf8.prefix(32))
        var entries: [Entry] = []
        for file in bind.tls.certificates {
            guard let ctx = hasp_ctx_new_server() else {
                throw TLSBuildError(description: "Proxy '\(proxy)': unable to allocate SSL context \(at).")
            }
            var keep = false
            defer { if !keep { SSL_CTX_free(ctx) } }
            let options = file.options
            let policy = (options?.policy ?? TLSPolicy()).over(basePolicy)
            if let refused = TLSLibrary.apply(policy, to: ctx) {
                throw TLSBuildError(description: "Proxy '\(proxy)': \(refused) \(at).")
            }
            // DHE: the certificate file's own DH parameters, else `ssl-dh-param-file`'s, else
            // (`tune.ssl.default-dh-param`) OpenSSL's built-in groups; otherwise no DHE.
            let dhSet = TLSLibrary.setDHParameters(file.pem, on: ctx)
                || (global.dhParams.map { TLSLibrary.setDHParameters($0.bytes, on: ctx) } ?? false)
            if !dhSet, let bits = global.defaultDHParam { _ = hasp_ctx_set_dh_auto(ctx, Int32(bits)) }
            hasp_ctx_set_session_cache(ctx, global.cacheSize, global.lifetimeSeconds, sessionContext, UInt32(sessionContext.count))
            if let keys = bind.tls.ticketKeys {
                let records = keys.ring.flatMap { $0 }
                let set = records.withUnsafeBufferPointer {
                    hasp_ctx_set_ticket_keys(ctx, $0.baseAddress, Int32(keys.ring.count), Int32(keys.ring[0].count), Int32(keys.encrypting))
                }
                guard set == 1 else { throw TLSBuildError(description: "Proxy '\(proxy)': unable to set the TLS ticket keys of '\(keys.path)' \(at).") }
            }
            // ALPN: HTTP/2 is not served yet, so `h2` is never chosen.
            let alpn = (options?.alpn ?? bind.tls.alpn ?? []).filter { $0 != "h2" }
            if !alpn.isEmpty, !bind.tls.noALPN {
                let wire = TLSLibrary.alpnWire(alpn)
                _ = wire.withUnsafeBufferPointer { hasp_ctx_set_alpn_server(ctx, $0.baseAddress, UInt32($0.count)) }
            }
            let verify = options?.verify ?? bind.tls.verify ?? .none
            if verify != .none {
                guard let ca = options?.caFile ?? bind.tls.caFile else {
                    throw TLSBuildError(description: "Proxy '\(proxy)': verify is enabled but no CA file specified \(at).")
                }
                let caVerifyFile = options?.caVerifyFile ?? bind.tls.caVerifyFile
                guard TLSLibrary.loadTrust(ca, into: ctx, crl: false, sendNames: caVerifyFile == nil) else {
                    throw TLSBuildError(description: "Proxy '\(proxy)': unable to load CA file '\(ca.path)' \(at).")
                }
                if let extra = caVerifyFile { _ = TLSLibrary.loadTrust(extra, into: ctx, crl: false, sendNames: false) }
                if let crl = options?.crlFile ?? bind.tls.crlFile, !TLSLibrary.loadTrust(crl, into: ctx, crl: true, sendNames: false) {
                    throw TLSBuildError(description: "Proxy '\(proxy)': unable to configure CRL file '\(crl.path)' \(at).")
                }
            }
            let caIgnore = bind.tls.caIgnore, crtIgnore = bind.tls.crtIgnore
            _ = caIgnore.codes.withUnsafeBufferPointer { ca in
                crtIgnore.codes.withUnsafeBufferPointer { crt in
                    hasp_ctx_set_verify(ctx, verify == .none ? 0 : verify == .optional ? 1 : 2,
                                        ca.baseAddress, Int32(ca.count), caIgnore.all ? 1 : 0,
                                        crt.baseAddress, Int32(crt.count), crtIgnore.all ? 1 : 0)
                }
            }
            let facts: CertificateFacts
            switch TLSLibrary.use(file, in: ctx) {
            case .failure(let failure): throw TLSBuildError(description: "Proxy '\(proxy)': \(failure.description) \(at).")
            case .success(let leaf): facts = leaf
            }
            // OCSP stapling: the certificate's shared staple takes the file's response when it
            // checked out and is new, and the context answers with it.
            var staple: OCSPStaple? = nil
            if let ocsp = file.ocsp {
                staple = OCSPStaples.shared.staple(for: ocsp.certificateID)
                guard let staple, hasp_ctx_set_ocsp(ctx, staple.pointer) == 1 else {
                    throw TLSBuildError(description: "Proxy '\(proxy)': unable to enable OCSP stapling for '\(file.path)' \(at).")
                }
                if let response = ocsp.response { staple.offer(response, nextUpdate: ocsp.nextUpdate, load: ocsp.load) }
            }
            let included = file.filters.filter { !$0.hasPrefix("!") }
            let excluded = Set(file.filters.filter { $0.hasPrefix("!") }.map { String($0.dropFirst()).asciiLowercased })
            let names = included.isEmpty ? facts.commonNames + facts.dnsNames : included
            keep = true
            entries.append(Entry(ctx: ctx, file: file, facts: facts, names: names, excluded: excluded, policy: file.options?.policy,
                                 staple: staple, keyKind: KeyKind(facts)))
        }
        let context = TLSServerContext(entries: entries, strictSNI: bind.tls.strictSNI)
        let arg = Unmanaged.passUnretained(context).toOpaque()
        for entry in entries { hasp_ctx_set_sni_callback(entry.ctx, serverNameCallback, arg) }
        return context
    }
}

/// OpenSSL's server-name callback: the context travels as the unretained argument (every
/// handshake's `TLSHandler` holds its context, so it outlives the handshake).
private let serverNameCallback: hasp_sni_cb = { ssl, name, arg in
    guard let ssl, let arg else { return 0 }
    let context = Unmanaged<TLSServerContext>.fromOpaque(arg).takeUnretainedValue()
    return context.select(ssl, name.flatMap { String(validatingCString: $0) })
}

/// The current TLS context of one bind and the settings it was built from; both are replaced
/// together by runtime certificate updates (`commit ssl cert`, `add ssl crt-list`...).
final class TLSBindSlot: Sendable {
    let frontend: String
    let bindIndex: Int
    private let current: NIOLockedValueBox<(context: TLSServerContext, settings: BindSettings)>

    /// How logs name the listener: its `name`, else its position in the frontend.
    let label: String

    init(frontend: String, bindIndex: Int, bind: BindSettings, context: TLSServerContext) {
        self.frontend = frontend
        self.bindIndex = bindIndex
        label = bind.name ?? "\(bindIndex + 1)"
        current = NIOLockedValueBox((context, bind))
    }

    var context: TLSServerContext { current.withLockedValue { $0.context } }
    var settings: BindSettings { current.withLockedValue { $0.settings } }

    func replace(_ context: TLSServerContext, settings: BindSettings) {
        current.withLockedValue { $0 = (context, settings) }
    }
}
