#if canImport(Glibc)
import Glibc
#endif

/// `chroot`, `group` and `user` from the global section, applied once the listening sockets are
/// held (so a worker can serve port 80 without keeping root).
public enum Privileges {
    public struct Failure: Error, CustomStringConvertible, Sendable {
        public var description: String
    }

    public static func drop(user: String?, group: String?, chroot directory: String?) throws(Failure) {
        var gid: gid_t? = nil
        var uid: uid_t? = nil
        var userName: String? = nil
        if let group {
            if let numeric = gid_t(group) { gid = numeric }
            else if let entry = getgrnam(group) { gid = entry.pointee.gr_gid }
            else { throw Failure(description: "[hasp.main()] Cannot find group id for '\(group)'.") }
        }
        if let user {
            if let numeric = uid_t(user) { uid = numeric }
            else if let entry = getpwnam(user) {
                uid = entry.pointee.pw_uid
                userName = user
                if gid == nil { gid = entry.pointee.pw_gid }
            } else {
                throw Failure(description: "[hasp.main()] Cannot find user id for '\(user)'.")
            }
        }
        if let directory {
            guard Glibc.chroot(directory) == 0, chdir("/") == 0 else {
                throw Failure(description: "[hasp.main()] Cannot chroot(\(directory)).")
            }
        }
        if let gid {
            var groups = [gid]
            if let userName { _ = initgroups(userName, gid) } else { _ = setgroups(1, &groups) }
            guard setgid(gid) == 0 else { throw Failure(description: "[hasp.main()] Cannot set gid \(gid).") }
        }
        if let uid {
            guard setuid(uid) == 0 else { throw Failure(description: "[hasp.main()] Cannot set uid \(uid).") }
        }
    }
}
