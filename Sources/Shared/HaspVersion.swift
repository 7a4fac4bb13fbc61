/// Version facts printed by `-v` and used by configuration conditions.
public enum HaspVersion {
    public static let version = "0.1.0"
    public static let date = "2026/11/25"
    /// The HAProxy version whose configuration language Hasp follows; `version_atleast()` compares
    /// against it so that existing configurations keep selecting the branches written for HAProxy.
    public static let compatibilityVersion = "3.3"
    /// Names accepted by `feature()`: only what this build really has.
    public static let features: Set<String> = ["EPOLL", "POLL", "THREAD", "OPENSSL", "PCRE2", "LIBCRYPT"]
}
