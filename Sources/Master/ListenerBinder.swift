import Shared
import Worker

#if canImport(Glibc)
import Glibc
#endif

/// The master's listening sockets for a configuration. A reload keeps the very same kernel
/// socket for every key that still exists, so no connection is refused in between.
enum ListenerBinder {
    /// Binds what is new, keeps what already exists (same key: the very same kernel socket).
    static func bind(_ configuration: Configuration, existing owned: [OwnedListener]) throws -> [OwnedListener] {
        var existing: [String: OwnedListener] = [:]
        for l in owned { existing[l.key] = l }
        var result: [OwnedListener] = []
        var opened: [Int32] = []
        do {
            for proxy in configuration.proxies where proxy.capabilities.contains(.frontend) && !proxy.disabled {
                for bind in proxy.binds {
                    let backlog = Int32(clamping: bind.backlog ?? bind.maxconn ?? proxy.maxconn ?? 4096)
                    for address in bind.addresses {
                        // A socket is reused only with the same options (a bind that became
                        // `transparent` needs a new socket).
                        let key = "\(address)#\(bind.unixMode.map { String($0, radix: 8) } ?? "-")"
                            + (bind.transparent ? "#transparent" : "") + (bind.freebind ? "#freebind" : "")
                        if var old = existing[key] {
                            old.frontend = proxy.name
                            old.backlog = backlog
                            ListenerSocket.relisten(old.fd, backlog: backlog)
                            result.append(old)
                            continue
                        }
                        do {
                            let fd = try ListenerSocket.open(address, backlog: backlog, unixMode: bind.unixMode,
                                                       unixUser: bind.unixUser, unixGroup: bind.unixGroup,
                                                       transparent: bind.transparent, freebind: bind.freebind)
                            opened.append(fd)
                            result.append(OwnedListener(key: key, fd: fd, frontend: proxy.name, address: address.description, backlog: backlog))
                        } catch {
                            throw StartupError("Starting \(proxy.kind == .listen ? "proxy" : "frontend") \(proxy.name): \(error)")
                        }
                    }
                }
            }
            /// A socket the master holds for the workers under `name` (the same one at each reload).
            func hold(_ address: ListenAddress, key: String, name: String, failure: (Error) -> String) throws {
                if var old = existing[key] {
                    old.frontend = name
                    result.append(old)
                    return
                }
                do {
                    let fd = try ListenerSocket.open(address, backlog: 64)
                    opened.append(fd)
                    result.append(OwnedListener(key: key, fd: fd, frontend: name, address: address.description, backlog: 64))
                } catch {
                    throw StartupError(failure(error))
                }
            }
            // TCP stats sockets: two generations of workers cannot both bind the port, so the
            // master holds it and passes it like a frontend listener. So is a listener the
            // master inherited (`fd@N`): a worker does not inherit the master's descriptors.
            for (index, socket) in configuration.global.statsSockets.enumerated() {
                switch socket.address {
                case .ipv4, .ipv6, .inheritedFD: break
                default: continue
                }
                try hold(socket.address, key: "stats#\(socket.address)", name: Engine.statsListenerName(index)) {
                    "Cannot create the stats socket \(socket.address): \($0)"
                }
            }
            // `peers` sections: held like the stats socket, so a reload keeps the port.
            for (section, address) in configuration.peersListeners {
                try hold(address, key: "peers#\(address)", name: Configuration.peersListenerName(section)) {
                    "Starting peers \(section): \($0)"
                }
            }
        } catch {
            for fd in opened { close(fd) }
            throw error
        }
        return result
    }
}
