#if canImport(Glibc)
import Glibc
#endif

/// The system's resolver (`getaddrinfo`), for what HAProxy resolves while it reads the
/// configuration (`init-addr libc`). Never called from an event loop.
public enum HostLookup {
    public static func resolves(_ host: String) -> Bool {
        var hints = addrinfo()
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        var result: UnsafeMutablePointer<addrinfo>? = nil
        guard getaddrinfo(host, nil, &hints, &result) == 0 else { return false }
        freeaddrinfo(result)
        return true
    }
}
