import CHaspTLS
import NIOConcurrencyHelpers
import Shared

/// The TLS side of one `server ... ssl` (or `check-ssl`): one OpenSSL client context, built
/// with the server, and the sessions kept to resume (`no-ssl-reuse` turns that off), one per
/// event loop so that loops never share a slot.
final class TLSClientContext: @unchecked Sendable {
    let context: OpaquePointer
    let alpnWire: [UInt8]
    let verify: TLSVerifyMode
    let settings: ServerTLSSettings
    /// Resumable sessions, one slot per loop (and one for checks).
    let sessions: [SessionSlot]

    /// A session to resume: the last resumable one this loop saw for the server.
    final class SessionSlot: @unchecked Sendable {
        private let session = NIOLockedValueBox<OpaquePointer?>(nil)
        let enabled: Bool

        init(enabled: Bool) { self.enabled = enabled }

        deinit {
            session.withLockedValue { if let s = $0 { SSL_SESSION_free(s) } }
        }

        func resume(_ connection: OpaquePointer) {
            guard enabled else { return }
            session.withLockedValue { s in
                if let s { _ = hasp_conn_set_session(connection, s) }
            }
        }

        /// Keeps the connection's session if it can be resumed; returns whether it did.
        @discardableResult
        func remember(_ connection: OpaquePointer) -> Bool {
            guard enabled else { return true }
            guard let s = hasp_conn_session(connection) else { return false }
            guard SSL_SESSION_is_resumable(s) == 1 else {
                SSL_SESSION_free(s)
                return false
            }
            session.withLockedValue { old in
                if let old { SSL_SESSION_free(old) }
                old = s
            }
            return true
        }

        func forget() {
            session.withLockedValue { old in
                if let old { SSL_SESSION_free(old) }
                old = nil
            }
        }
    }

    private init(context: OpaquePointer, alpnWire: [UInt8], verify: TLSVerifyMode, settings: ServerTLSSettings, loops: Int) {
        self.context = context
        self.alpnWire = alpnWire
        self.verify = verify
        self.settings = settings
        sessions = (0...loops).map { _ in SessionSlot(enabled: !settings.noSSLReuse) }
    }

    deinit { SSL_CTX_free(context) }

    /// The name to check the server's certificate against: `verifyhost`, else the SNI sent,
    /// when verification is required.
    func verifyHost(serverName: String?) -> String? {
        guard verify == .required else { return nil }
        return settings.verifyHost ?? serverName
    }

    /// Builds the context of a server with `ssl` or `check-ssl`; nil when it has neither.
    static func build(_ tls: ServerTLSSettings, global: GlobalSettings, loops: Int, alpn override: [String]? = nil) throws(TLSBuildError) -> TLSClientContext? {
        guard tls.enabled || tls.checkSSL else { return nil }
        hasp_tls_init()
        guard let ctx = hasp_ctx_new_client() else { throw TLSBuildError(description: "unable to allocate SSL context") }
        var keep = false
        defer { if !keep { SSL_CTX_free(ctx) } }
        if let refused = TLSLibrary.apply(tls.policy.over(global.tls.serverDefaults), to: ctx) {
            throw TLSBuildError(description: refused)
        }
        hasp_ctx_set_client_session_cache(ctx)
        let verify = tls.verify ?? (global.sslServerVerifyRequired ? .required : .none)
        if verify == .required {
            if tls.systemCA {
                _ = hasp_ctx_use_system_ca(ctx)
            } else if let ca = tls.caFile {
                guard TLSLibrary.loadTrust(ca, into: ctx, crl: false, sendNames: false) else {
                    throw TLSBuildError(description: "unable to load CA file '\(ca.path)'")
                }
            }
            if let crl = tls.crlFile, !TLSLibrary.loadTrust(crl, into: ctx, crl: true, sendNames: false) {
                throw TLSBuildError(description: "unable to configure CRL file '\(crl.path)'")
            }
        }
        _ = hasp_ctx_set_verify(ctx, verify == .required ? 1 : 0, nil, 0, 0, nil, 0, 0)
        if let file = tls.certificate, case .failure(let failure) = TLSLibrary.use(file, in: ctx) { throw failure }
        keep = true
        return TLSClientContext(context: ctx, alpnWire: TLSLibrary.alpnWire(override ?? tls.alpn ?? []), verify: verify,
                                settings: tls, loops: loops)
    }
}
