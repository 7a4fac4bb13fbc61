import NIOCore
import Shared

/// The one-line log of a failed handshake, as HAProxy writes it:
/// `<client>:<port> [<accept date>] <frontend>/<bind>: SSL handshake failure`.
enum TLSFailureLog {
    static func line(client: SocketAddress?, acceptedMicros: Int, frontend: String, bind: String, failure: TLSFailure) -> String {
        "\(ExchangeLog.client(client)) [\(LogDate.haproxy(acceptedMicros))] \(frontend)/\(bind): \(failure.logMessage)"
    }

    /// What a server-side TLS handler calls when its handshake fails. `dontlognull` leaves out
    /// connections that sent nothing (probes).
    static func reporter(frontend: Frontend, bind: TLSBindSlot, channel: Channel, handler: TLSHandler) -> ((TLSFailure) -> Void)? {
        guard let logger = frontend.logger else { return nil }
        let accepted = WallClock.microseconds()
        let client = channel.remoteAddress
        let dontLogNull = frontend.settings.options.dontLogNull
        let name = frontend.name, label = bind.label
        return { [weak handler] failure in
            if dontLogNull, (handler?.receivedBytes ?? 0) == 0 { return }
            logger.emit(.err, line(client: client, acceptedMicros: accepted, frontend: name, bind: label, failure: failure))
        }
    }
}
