import NIOCore
import Shared

/// A session `show sess` can list.
protocol DescribableSession {
    func shortDescription() -> String
}

enum SessionText {
    /// `0x7f...` from the object's identity, as HAProxy prints stream pointers.
    static func identity(_ object: AnyObject) -> String {
        "0x" + String(UInt(bitPattern: ObjectIdentifier(object).hashValue), radix: 16)
    }

    static func source(_ address: SocketAddress?) -> (proto: String, text: String) {
        switch address {
        case .v4(let a)?: return ("tcpv4", "\(a.host):\(address?.port ?? 0)")
        case .v6(let a)?: return ("tcpv6", "\(a.host):\(address?.port ?? 0)")
        case .unixDomainSocket?: return ("unix_stream", "unix:1")
        case nil: return ("?", "?")
        }
    }

    static func line(_ object: AnyObject, address: SocketAddress?, frontend: String, backend: String?, server: String?,
                     ageMs: Int) -> String {
        let (proto, src) = source(address)
        return "\(identity(object)): proto=\(proto) src=\(src) fe=\(frontend) be=\(backend ?? "<NONE>") srv=\(server ?? "<none>") ts=00 epoch=0 age=\(SessionText.age(ageMs))"
    }

    static func age(_ ms: Int) -> String {
        let s = max(0, ms / 1000)
        if s < 60 { return "\(s)s" }
        if s < 3600 { return "\(s / 60)m\(s % 60)s" }
        if s < 86400 { return "\(s / 3600)h\((s / 60) % 60)m" }
        return "\(s / 86400)d\((s / 3600) % 24)h"
    }
}

extension HTTPSession: DescribableSession {
    func shortDescription() -> String {
        SessionText.line(self, address: clientAddress, frontend: frontend.name,
                         backend: slot?.backend.name ?? frontend.backend?.name, server: slot?.server.name,
                         ageMs: MonotonicClock.milliseconds() - createdAtMs)
    }

    /// Keeps the request for `show errors`.
    func captureInvalidRequest(_ buffer: ByteBuffer) {
        let bytes = buffer.getBytes(at: buffer.readerIndex, length: min(buffer.readableBytes, ErrorCaptures.maxBytes)) ?? []
        let source = SessionText.source(clientAddress).text
        let settings = frontend.settings
        runtime.errorCaptures.record { event in
            CapturedError(kind: .request, proxyName: settings.name, proxyID: settings.id, isFrontend: true,
                          backendName: nil, backendID: -1, serverName: nil, serverID: -1, event: event,
                          source: source, timeMs: WallClock.milliseconds(), bytes: bytes)
        }
    }
}
