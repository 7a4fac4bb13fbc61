import NIOCore
import NIOPosix
import Shared

#if canImport(Glibc)
import Glibc
#endif

/// Receives an idle client connection's descriptor (a duplicate the callee now owns) and the
/// name of its frontend; returns false when it could not pass it on. `mayWait` is false on an
/// event loop: the sink then fails rather than block.
public typealias HandoverSink = @Sendable (_ fd: Int32, _ frontend: String, _ mayWait: Bool) -> Bool

/// Maps "local>peer" TCP endpoints to this process's descriptors, so that an NIO channel's
/// socket can be duplicated for hand-over (NIO does not expose descriptors). Built once per
/// soft-stop with one pass over /proc/self/fd.
struct SocketTable: Sendable {
    private var byEndpoints: [String: Int32] = [:]

    static func build() -> SocketTable {
        var table = SocketTable()
        guard let dir = opendir("/proc/self/fd") else { return table }
        defer { closedir(dir) }
        while let entry = readdir(dir) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in
                String(decoding: raw.prefix { $0 != 0 }, as: UTF8.self)
            }
            guard let fd = Int32(name), let local = endpoint(fd, peer: false), let peer = endpoint(fd, peer: true) else { continue }
            table.byEndpoints["\(local)>\(peer)"] = fd
        }
        return table
    }

    func descriptor(local: SocketAddress?, remote: SocketAddress?) -> Int32? {
        guard let l = local, let r = remote, let lip = l.ipAddress, let lp = l.port, let rip = r.ipAddress, let rp = r.port else { return nil }
        return byEndpoints["\(lip):\(lp)>\(rip):\(rp)"]
    }

    private static func endpoint(_ fd: Int32, peer: Bool) -> String? {
        var storage = sockaddr_storage()
        var length = socklen_t(MemoryLayout<sockaddr_storage>.size)
        let rc = withUnsafeMutablePointer(to: &storage) { p in
            p.withMemoryRebound(to: sockaddr.self, capacity: 1) { sa in
                peer ? getpeername(fd, sa, &length) : getsockname(fd, sa, &length)
            }
        }
        guard rc == 0 else { return nil }
        var text = [CChar](repeating: 0, count: Int(INET6_ADDRSTRLEN))
        switch Int32(storage.ss_family) {
        case AF_INET:
            var sin = withUnsafePointer(to: &storage) { $0.withMemoryRebound(to: sockaddr_in.self, capacity: 1) { $0.pointee } }
            inet_ntop(AF_INET, &sin.sin_addr, &text, socklen_t(text.count))
            return "\(AddressParser.cText(text)):\(UInt16(bigEndian: sin.sin_port))"
        case AF_INET6:
            var sin6 = withUnsafePointer(to: &storage) { $0.withMemoryRebound(to: sockaddr_in6.self, capacity: 1) { $0.pointee } }
            inet_ntop(AF_INET6, &sin6.sin6_addr, &text, socklen_t(text.count))
            return "\(AddressParser.cText(text)):\(UInt16(bigEndian: sin6.sin6_port))"
        default:
            return nil
        }
    }
}

extension Engine {
    /// Adopts a client connection handed over by a draining worker: it becomes a fresh
    /// session of `frontend`, and its client never notices the change of process.
    public func adopt(fd: Int32, frontend name: String) {
        if runtime.isStopping {
            // It arrived after this worker was told to stop (a newer reload overtook it): send it
            // back through the master to the newest worker rather than dropping the client (this
            // runs on the channel's reader thread, which may wait for room).
            if let sink = currentHandoverSink(), sink(fd, name, true) { return }
            close(fd)
            return
        }
        guard let frontend = runtime.frontends.first(where: { $0.name == name }), frontend.servesHTTP else {
            close(fd)
            return
        }
        let runtime = self.runtime
        // Until its session is open, the connection is not counted among the sessions: the
        // soft stop must not take the process for idle meanwhile (its exit would reset it).
        runtime.pendingAdoptions.wrappingIncrement(ordering: .relaxed)
        ClientBootstrap(group: runtime.group.next())
            .channelOption(.allowRemoteHalfClosure, value: true)
            .channelInitializer { channel in
                do {
                    try channel.pipeline.syncOperations.addHandler(HTTPSession(runtime: runtime, frontend: frontend), name: "hasp.session")
                    return channel.eventLoop.makeSucceededVoidFuture()
                } catch {
                    return channel.eventLoop.makeFailedFuture(error)
                }
            }
            .withConnectedSocket(fd)
            .whenComplete { result in
                if case .failure = result { close(fd) }
                runtime.pendingAdoptions.wrappingDecrement(ordering: .relaxed)
            }
    }
}
