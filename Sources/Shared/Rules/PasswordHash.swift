import CHaspSys

/// `crypt(3)` through the system's libcrypt: `$5$`, `$6$`, `$2y$`, `$y$`... whatever it knows.
public enum PasswordHash {
    public static func crypt(_ key: String, setting: String) -> String? {
        var out = [CChar](repeating: 0, count: 512)
        guard hasp_crypt(key, setting, &out, out.count) == 0 else { return nil }
        let length = out.firstIndex(of: 0) ?? out.count
        return String(decoding: out[0..<length].map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }
}
