/// The statistics a session feeds (`show stat`): responses by class and bytes, for the frontend
/// and, once a server is chosen, for its backend and server.
extension HTTPSession {
    func countResponse(status: Int) {
        streams.streamStatus = status
        frontend.counters.countResponse(status: status)
        if let (backend, server) = slot {
            backend.counters.countResponse(status: status)
            server.counters.countResponse(status: status)
        }
    }

    func countResponseBytes(_ n: Int) {
        streams.streamBytesOut &+= Int64(n)
        frontend.counters.bytesOut.wrappingIncrement(by: n, ordering: .relaxed)
        if exchangeLog != nil { exchangeLog!.bytesOut += n }
        if let (backend, server) = slot {
            backend.counters.bytesOut.wrappingIncrement(by: n, ordering: .relaxed)
            server.counters.bytesOut.wrappingIncrement(by: n, ordering: .relaxed)
        }
    }

    func countRequestBytes(_ n: Int) {
        if let (backend, server) = slot {
            backend.counters.bytesIn.wrappingIncrement(by: n, ordering: .relaxed)
            server.counters.bytesIn.wrappingIncrement(by: n, ordering: .relaxed)
        }
    }
}
