import Shared

#if canImport(Glibc)
import Glibc
#endif

enum VersionBanner {
    static var short: String {
        "Hasp version \(HaspVersion.version) \(HaspVersion.date) - HAProxy-compatible load balancer (configuration level \(HaspVersion.compatibilityVersion))\n"
    }

    static func text(for request: LaunchOptions.VersionRequest) -> String {
        switch request {
        case .short:
            return short + "Running on: \(uname())\n"
        case .verbose:
            return short + "Running on: \(uname())\n"
                + "Build options :\n  Swift 6, SwiftNIO event loops, posix_spawn workers\n\n"
                + "Feature list : " + HaspVersion.features.sorted().map { "+\($0)" }.joined(separator: " ") + "\n\n"
                + "Running on OpenSSL version : \(CertificateCheck.libraryVersion)\n"
                + "OpenSSL library supports TLS extensions : yes\n"
                + "OpenSSL library supports SNI : yes\n"
                + "OpenSSL library supports : TLSv1.0 TLSv1.1 TLSv1.2 TLSv1.3\n\n"
                + "Available polling systems :\n      epoll : pref=300,  test result OK\n\n"
                + "Available multiplexer protocols :\n         h1 : mode=HTTP  side=FE|BE\n       none : mode=TCP   side=FE|BE\n"
        case .full:
            return HaspVersion.version + "\n"
        case .shortNumber, .branch:
            return HaspVersion.version.split(separator: ".").prefix(2).joined(separator: ".") + "\n"
        }
    }

    static func uname() -> String {
        var info = utsname()
        guard Glibc.uname(&info) == 0 else { return "unknown" }
        func field<T>(_ value: T) -> String {
            withUnsafeBytes(of: value) { raw in String(decoding: raw.prefix { $0 != 0 }, as: UTF8.self) }
        }
        return "\(field(info.sysname)) \(field(info.release)) \(field(info.version)) \(field(info.machine))"
    }
}

enum DiagnosticPrinterBridge {
    static func alert(_ text: String) { DiagnosticPrinter.shared.alert(text) }
}
