import NIOCore
import Shared

/// `stick match|on|store-request|store-response` for HTTP exchanges (`StickPersistence`).
extension HTTPSession {
    /// The server the request's key sticks to, when it may take the request (up, or any
    /// state with `option persist`); nil lets the balancer choose.
    func stickyServer(_ backend: Backend, assigned: Bool) -> Server? {
        StickPersistence.server(backend, context: streams, runtime: runtime, assigned: assigned) { persistenceAccepts($0, backend) }
    }

    /// The response came from `server`: the noted keys, and those of `stick store-response`
    /// rules (which read the response head), now map to it.
    func storeSticking(_ backend: Backend, _ server: Server, response head: MessageHead) {
        if streams.response == nil, backend.rules.stickRules.contains(where: { $0.kind == .storeResponse }) { streams.response = head }
        StickPersistence.store(backend, server, context: streams)
    }
}
