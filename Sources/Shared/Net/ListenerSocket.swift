#if canImport(Glibc)
import Glibc
#endif

/// Creates listening sockets with plain system calls, so that the master can own them and pass
/// them to workers; the worker (or standalone process) adopts them in NIO.
public enum ListenerSocket {
    public struct Failure: Error, CustomStringConvertible, Sendable {
        public var address: ListenAddress
        public var operation: String
        public var code: Int32
        public var description: String {
            "cannot \(operation) socket (\(String(decoding: errnoText(code), as: UTF8.self))) [\(address)]"
        }
    }

    static func errnoText(_ code: Int32) -> [UInt8] {
        guard let text = strerror(code) else { return Array("errno \(code)".utf8) }
        var bytes: [UInt8] = []
        var p = text
        while p.pointee != 0 {
            bytes.append(UInt8(bitPattern: p.pointee))
            p += 1
        }
        return bytes
    }

    /// Binds and listens; returns the descriptor (CLOEXEC, blocking mode left to the adopter).
    /// A UNIX socket file gets `unixMode` and the owner `unixUser`/`unixGroup` (names or ids).
    /// `transparent` and `freebind` let an IP socket take an address this host does not own.
    public static func open(_ address: ListenAddress, backlog: Int32, unixMode: UInt32? = nil,
                            unixUser: String? = nil, unixGroup: String? = nil,
                            transparent: Bool = false, freebind: Bool = false) throws(Failure) -> Int32 {
        let options = IPOptions(transparent: transparent, freebind: freebind)
        switch address {
        case .inheritedFD(let fd):
            guard fcntl(fd, F_GETFD) >= 0 else { throw Failure(address: address, operation: "use inherited", code: errno) }
            return fd
        case .ipv4(let host, let port):
            var sin = sockaddr_in()
            sin.sin_family = sa_family_t(AF_INET)
            sin.sin_port = in_port_t(UInt16(port).bigEndian)
            guard inet_pton(AF_INET, host, &sin.sin_addr) == 1 else { throw Failure(address: address, operation: "parse", code: EINVAL) }
            return try withUnsafeBytes(of: &sin) { raw throws(Failure) in
                try bindAndListen(family: AF_INET, address: address, sockaddr: raw, backlog: backlog, options: options)
            }
        case .ipv6(let host, let port):
            var sin6 = sockaddr_in6()
            sin6.sin6_family = sa_family_t(AF_INET6)
            sin6.sin6_port = in_port_t(UInt16(port).bigEndian)
            guard inet_pton(AF_INET6, host, &sin6.sin6_addr) == 1 else { throw Failure(address: address, operation: "parse", code: EINVAL) }
            return try withUnsafeBytes(of: &sin6) { raw throws(Failure) in
                try bindAndListen(family: AF_INET6, address: address, sockaddr: raw, backlog: backlog, options: options)
            }
        case .abstractUnix(let name):
            return try bindUnix(address: address, name: [0] + Array(name.utf8), terminator: 0, backlog: backlog)
        case .unix(let path):
            // As haproxy: bound and listening under a temporary name, then renamed into place,
            // so a client never finds the path without a listener behind it (a fresh start
            // between bind and listen, or a reload replacing the socket).
            let temporary = "\(path).\(getpid()).tmp"
            let direct = temporary.utf8.count >= MemoryLayout<sockaddr_un>.size - MemoryLayout<sa_family_t>.size
            let boundPath = direct ? path : temporary
            unlink(boundPath)
            let fd: Int32
            do { fd = try bindUnix(address: address, name: Array(boundPath.utf8), terminator: 1, backlog: backlog) } catch {
                if !direct { unlink(temporary) }
                throw error
            }
            if let unixMode { chmod(boundPath, mode_t(unixMode)) }
            if unixUser != nil || unixGroup != nil {
                let uid = unixUser.flatMap { uid_t($0) ?? getpwnam($0)?.pointee.pw_uid } ?? uid_t.max
                let gid = unixGroup.flatMap { gid_t($0) ?? getgrnam($0)?.pointee.gr_gid } ?? gid_t.max
                // uid_t.max (-1) leaves that part of the owner as it is.
                chown(boundPath, uid, gid)
            }
            if !direct, rename(temporary, path) != 0 {
                let code = errno
                unlink(temporary)
                close(fd)
                throw Failure(address: address, operation: "rename", code: code)
            }
            return fd
        }
    }

    /// `name`: the path's bytes, or a zero byte and the abstract name; `terminator` is 1 for a
    /// path (its final zero byte counts in the address length), 0 for an abstract name.
    private static func bindUnix(address: ListenAddress, name: [UInt8], terminator: Int,
                                 backlog: Int32) throws(Failure) -> Int32 {
        var sun = sockaddr_un()
        sun.sun_family = sa_family_t(AF_UNIX)
        guard name.count < MemoryLayout.size(ofValue: sun.sun_path) else {
            throw Failure(address: address, operation: "bind", code: ENAMETOOLONG)
        }
        withUnsafeMutableBytes(of: &sun.sun_path) { dst in
            for (i, b) in name.enumerated() { dst[i] = b }
        }
        let length = MemoryLayout<sa_family_t>.size + name.count + terminator
        return try withUnsafeBytes(of: &sun) { raw throws(Failure) in
            try bindAndListen(family: AF_UNIX, address: address, sockaddr: UnsafeRawBufferPointer(rebasing: raw[0..<length]), backlog: backlog)
        }
    }

    struct IPOptions {
        var transparent = false
        var freebind = false
    }

    private static func bindAndListen(family: Int32, address: ListenAddress, sockaddr raw: UnsafeRawBufferPointer, backlog: Int32,
                                      options: IPOptions = IPOptions()) throws(Failure) -> Int32 {
        let fd = socket(family, Int32(SOCK_STREAM.rawValue | SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw Failure(address: address, operation: "create", code: errno) }
        var one: Int32 = 1
        if family != AF_UNIX {
            setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
        }
        if family == AF_INET6 {
            // Like HAProxy: an IPv6 wildcard listens on IPv6 only unless told otherwise.
            setsockopt(fd, Int32(IPPROTO_IPV6), IPV6_V6ONLY, &one, socklen_t(MemoryLayout<Int32>.size))
        }
        // IP_TRANSPARENT (19) / IPV6_TRANSPARENT (75) and IP_FREEBIND (15) / IPV6_FREEBIND (78).
        let level = family == AF_INET6 ? Int32(IPPROTO_IPV6) : Int32(IPPROTO_IP)
        if options.transparent, setsockopt(fd, level, family == AF_INET6 ? 75 : 19, &one, socklen_t(MemoryLayout<Int32>.size)) != 0 {
            // As haproxy: said, then the bind goes on (and fails if the address is foreign).
            DiagnosticPrinter.shared.alert("cannot make receiving socket transparent [\(address)]")
        }
        if options.freebind {
            // IP_FREEBIND at the IP level also covers IPv6 sockets, on every kernel.
            setsockopt(fd, Int32(IPPROTO_IP), 15, &one, socklen_t(MemoryLayout<Int32>.size))
        }
        let rc = raw.withMemoryRebound(to: sockaddr.self) { sa in
            Glibc.bind(fd, sa.baseAddress, socklen_t(raw.count))
        }
        guard rc == 0 else {
            let code = errno
            close(fd)
            throw Failure(address: address, operation: "bind", code: code)
        }
        guard listen(fd, backlog) == 0 else {
            let code = errno
            close(fd)
            throw Failure(address: address, operation: "listen", code: code)
        }
        return fd
    }

    /// Re-applies the backlog: NIO's adoption calls listen() again with its own default.
    public static func relisten(_ fd: Int32, backlog: Int32) {
        _ = listen(fd, backlog)
    }
}
