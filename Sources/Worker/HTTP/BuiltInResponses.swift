import NIOCore
import NIOHTTP1

/// HAProxy's built-in responses, with the same status lines, header spelling and bodies.
/// 400 and 408 come from the connection layer (capitalised names, connection closed);
/// the others come from the stream layer and keep the connection alive.
enum BuiltInResponse: Int, Sendable {
    case badRequest = 400
    case forbidden = 403
    case requestTimeout = 408
    case internalError = 500
    case badGateway = 502
    case serviceUnavailable = 503
    case gatewayTimeout = 504

    /// HAProxy's reason phrase and page for the status (`ErrorPages`, shared with rules).
    var reason: String { ErrorPages.page(rawValue).reason }
    var body: String { ErrorPages.page(rawValue).body }

    /// Whether the connection is closed after this response whatever the client asked.
    var closesConnection: Bool { self == .badRequest || self == .requestTimeout }

    func head(version: HTTPVersion = .http1_1) -> HTTPResponseHead {
        let length = String(body.utf8.count)
        var headers = HTTPHeaders()
        if closesConnection {
            headers.add(name: "Content-length", value: length)
            headers.add(name: "Cache-Control", value: "no-cache")
            headers.add(name: "Connection", value: "close")
            headers.add(name: "Content-Type", value: "text/html")
        } else {
            headers.add(name: "content-length", value: length)
            headers.add(name: "cache-control", value: "no-cache")
            headers.add(name: "content-type", value: "text/html")
        }
        return HTTPResponseHead(version: .http1_1, status: .custom(code: UInt(rawValue), reasonPhrase: reason), headers: headers)
    }

    /// The whole response as raw bytes, for places without an HTTP encoder (tests, raw sockets).
    var rawBytes: String {
        let h = head()
        var text = "HTTP/1.1 \(rawValue) \(reason)\r\n"
        for (name, value) in h.headers { text += "\(name): \(value)\r\n" }
        return text + "\r\n" + body
    }
}
