import CCap
#if canImport(Glibc)
import Glibc
#endif

/// `chroot`, `group`, `user` and `setcap` from the global section, applied by a worker once it
/// holds its listening sockets and has read every file it needs, and before it starts a thread:
/// capabilities belong to each thread, and threads inherit them from the one that creates them,
/// so a worker that dropped after its event loops started would leave them with the wrong set.
///
/// The privilege model: the master keeps root (it binds the listeners again on reload); a
/// worker with `user` runs as that user with exactly the capabilities `setcap` names, or none.
public enum Privileges {
    public struct Failure: Error, CustomStringConvertible, Sendable {
        public var description: String
    }

    public static func drop(user: String?, group: String?, chroot directory: String?,
                            keeping capabilities: [Capability] = []) throws(Failure) {
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
        guard let uid else { return }
        // Capabilities only matter when root becomes someone else: a process that stays root
        // keeps everything, one that is not root has nothing to keep.
        let keeps = !capabilities.isEmpty && getuid() == 0 && uid != 0
        if keeps {
            // Keep the permitted set across setuid(); the effective set is emptied by it and set
            // again below, to exactly what was asked.
            guard cap_prctl(Int(PR_SET_KEEPCAPS), 1, 0, 0, 0, 0) == 0 else {
                throw Failure(description: "Failed to preserve capabilities using prctl(): \(String(cString: strerror(errno)))")
            }
        }
        guard setuid(uid) == 0 else { throw Failure(description: "[hasp.main()] Cannot set uid \(uid).") }
        if keeps {
            try setCapabilities(capabilities)
            _ = cap_prctl(Int(PR_SET_KEEPCAPS), 0, 0, 0, 0, 0)
        }
    }

    /// Makes `capabilities` the calling thread's permitted and effective sets, nothing inheritable.
    private static func setCapabilities(_ capabilities: [Capability]) throws(Failure) {
        guard let state = cap_init() else {
            throw Failure(description: "Failed to set the final capabilities: \(String(cString: strerror(errno)))")
        }
        defer { cap_free(UnsafeMutableRawPointer(state)) }
        var values = capabilities.map { cap_value_t($0.number) }
        let count = Int32(values.count)
        let set = values.withUnsafeMutableBufferPointer { buffer in
            cap_set_flag(state, CAP_PERMITTED, count, buffer.baseAddress, CAP_SET) == 0
                && cap_set_flag(state, CAP_EFFECTIVE, count, buffer.baseAddress, CAP_SET) == 0
        }
        guard set, cap_set_proc(state) == 0 else {
            throw Failure(description: "Failed to set the final capabilities using capset(): \(String(cString: strerror(errno)))")
        }
    }
}

extension Privileges {
    /// HAProxy's check before it serves: options that need network-admin rights (`usesrc`)
    /// with a `user` other than root, and no `setcap cap_net_admin` or `cap_net_raw` to keep
    /// them. The alert lines, or nil when the configuration can work.
    /// `capabilitiesKept`: whether this process honours `setcap` (workers of `-W`; not a
    /// standalone process).
    public static func missingNetworkAdmin(_ configuration: Configuration, capabilitiesKept: Bool = true) -> [String]? {
        let needs = configuration.proxies.contains { proxy in
            proxy.kind != .defaults
                && ((proxy.source?.needsNetworkAdmin ?? false) || proxy.servers.contains { $0.source?.needsNetworkAdmin ?? false })
        }
        guard needs, let user = configuration.global.user else { return nil }
        let uid: uid_t? = uid_t(user) ?? getpwnam(user).map { $0.pointee.pw_uid }
        guard let uid, uid != 0 else { return nil }
        if capabilitiesKept, configuration.global.capabilities.contains(where: { $0 == .netAdmin || $0 == .netRaw }) { return nil }
        return [
            "[hasp.main()] Some configuration options require full privileges, so global.uid cannot be changed.",
            "[hasp.main()] Alternately, if your system supports Linux capabilities, you may also consider using 'setcap cap_net_raw' or 'setcap cap_net_admin' in the 'global' section.",
        ]
    }
}
