// swift-tools-version:6.0
import PackageDescription

/// The C shims get glibc's checked string and memory functions in release builds (Debian's
/// hardening; the Swift code calls none of them through the preprocessor).
let fortified: [CSetting] = [.define("_FORTIFY_SOURCE", to: "2", .when(configuration: .release))]

let package = Package(
    name: "Hasp",
    products: [
        .executable(name: "hasp", targets: ["Master"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-nio.git", from: "2.101.0"),
        .package(url: "https://github.com/apple/swift-atomics.git", from: "1.3.0"),
    ],
    targets: [
        // The few libc calls Swift cannot express (SCM_RIGHTS, closefrom, prctl).
        .target(name: "CHaspSys", cSettings: fortified, linkerSettings: [.linkedLibrary("crypt")]),
        // Debian's PCRE2 (libpcre2-dev): the regular expressions of ACLs, converters and rules.
        .systemLibrary(name: "CPCRE2", pkgConfig: "libpcre2-8", providers: [.apt(["libpcre2-dev"])]),
        // Debian's c-ares (libc-ares-dev): DNS resolution for `resolvers` sections, off the
        // event loops.
        .systemLibrary(name: "CCares", pkgConfig: "libcares", providers: [.apt(["libc-ares-dev"])]),
        // Debian's libcap (libcap-dev): `setcap`, the capabilities workers keep after they drop
        // to `user`/`group`.
        .systemLibrary(name: "CCap", pkgConfig: "libcap", providers: [.apt(["libcap-dev"])]),
        // Debian's xxHash (libxxhash-dev): the `xxh3`, `xxh32` and `xxh64` converters and
        // dynamic cookies.
        .systemLibrary(name: "CXXHash", pkgConfig: "libxxhash", providers: [.apt(["libxxhash-dev"])]),
        // Debian's OpenSSL 3 (libssl-dev): TLS termination and origination, through a thin C
        // layer for the macros and callbacks Swift cannot express.
        .target(name: "CHaspTLS", cSettings: fortified, linkerSettings: [.linkedLibrary("ssl"), .linkedLibrary("crypto")]),
        .target(
            name: "Shared",
            dependencies: ["CHaspSys", "CPCRE2", "CHaspTLS", "CCap", "CXXHash", .product(name: "Atomics", package: "swift-atomics")],
            // Rules run on the request path: no dynamic exclusivity checks in release builds.
            swiftSettings: [.unsafeFlags(["-enforce-exclusivity=unchecked"], .when(configuration: .release))]
        ),
        .target(
            name: "Worker",
            dependencies: [
                "Shared",
                "CHaspSys",
                "CHaspTLS",
                "CCares",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                .product(name: "Atomics", package: "swift-atomics"),
            ],
            swiftSettings: [.unsafeFlags(["-enforce-exclusivity=unchecked"], .when(configuration: .release))]
        ),
        // The executable: command line, master, worker role. NIO only through `Worker`.
        .executableTarget(
            name: "Master",
            dependencies: ["Shared", "Worker", "CHaspSys"]
        ),
        // Not shipped: the bare NIO relay that measures the channel layer's floor (bench/).
        .executableTarget(
            name: "nio-relay",
            dependencies: [.product(name: "NIOCore", package: "swift-nio"), .product(name: "NIOPosix", package: "swift-nio")],
            path: "bench/nio-relay"
        ),
        .testTarget(name: "SharedTests", dependencies: ["Shared"]),
        .testTarget(
            name: "WorkerTests",
            dependencies: [
                "Worker", "Shared",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOEmbedded", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
            ]
        ),
        .testTarget(
            name: "IntegrationTests",
            dependencies: [
                "Shared", "CHaspSys",
                .product(name: "Atomics", package: "swift-atomics"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
            ]
        ),
    ],
    swiftLanguageModes: [.v6]
)
