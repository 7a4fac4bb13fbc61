import Foundation
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// Certificates made with the `openssl` command for one test: a CA, server certificates it
/// signed (`a.test` with `www.a.test`, `*.w.test`, `b.test`), a client certificate it signed,
/// and a self-signed client certificate nobody trusts. Files are PEM, certificate then key.
final class TLSMaterial {
    let dir: TempDir
    var ca: String { dir.path("ca.crt") }
    var a: String { dir.path("a.pem") }
    var wild: String { dir.path("wild.pem") }
    var b: String { dir.path("b.pem") }
    var client: String { dir.path("client.pem") }
    var rogue: String { dir.path("rogue.pem") }

    init() throws {
        dir = try TempDir()
        let d = dir.url.path
        let script = """
        set -e
        cd '\(d)'
        ec() { openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$1.key" -out "$1.csr" -subj "$2" 2>/dev/null; }
        openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout ca.key -out ca.crt -days 30 -subj /CN=Hasp-Test-CA 2>/dev/null
        sign() { openssl x509 -req -in "$1.csr" -CA ca.crt -CAkey ca.key -CAcreateserial -days 30 -out "$1.crt" -extfile "$1.ext" 2>/dev/null; cat "$1.crt" "$1.key" > "$1.pem"; }
        ec a /CN=a.test; printf 'subjectAltName=DNS:a.test,DNS:www.a.test\\n' > a.ext; sign a
        ec wild '/CN=*.w.test'; printf 'subjectAltName=DNS:*.w.test\\n' > wild.ext; sign wild
        ec b /CN=b.test; printf 'subjectAltName=DNS:b.test\\n' > b.ext; sign b
        ec client /CN=client; printf 'extendedKeyUsage=clientAuth\\n' > client.ext; sign client
        openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout rogue.key -out rogue.crt -days 30 -subj /CN=rogue 2>/dev/null
        cat rogue.crt rogue.key > rogue.pem
        """
        let result = try run("/bin/sh", ["-c", script])
        guard result.status == 0 else { throw HarnessError("openssl failed: \(result.stderr)") }
    }

    /// A directory holding the given certificates under the given names (`crt <dir>`).
    func directory(_ files: [(name: String, from: String)]) throws -> String {
        let path = dir.path("certs-\(UUID().uuidString.prefix(8))")
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        for file in files { try FileManager.default.copyItem(atPath: file.from, toPath: path + "/" + file.name) }
        return path
    }

    /// The `defaults` section of the TLS tests' configurations.
    static let httpDefaults = """
        defaults
            mode http
            timeout client 5s
            timeout server 5s
            timeout connect 2s
        """

    static var opensslAvailable: Bool { FileManager.default.isExecutableFile(atPath: "/usr/bin/openssl") }
}

/// `openssl s_server -www` on a port: a TLS server that answers any GET with a status page.
final class TLSEchoServer {
    let child: ChildProcess
    let port: Int

    init(certificate: String, dir: TempDir, extra: [String] = []) throws {
        port = try Ports.free()
        child = try ChildProcess("/usr/bin/openssl", ["s_server", "-accept", "127.0.0.1:\(port)", "-cert", certificate,
                                                      "-www", "-quiet"] + extra, dir: dir, name: "s_server-\(port)")
        try eventually("s_server on \(port)") { Ports.isAccepting(port) }
    }

    func stop() { child.stop() }
    deinit { child.stop() }
}

/// One TLS client run of `openssl s_client`: what it printed.
func sClient(_ port: Int, serverName: String? = nil, arguments: [String] = [], input: String = "") throws -> String {
    let dir = try TempDir()
    let inputPath = try dir.write("in.txt", input)
    var args = ["-c", "openssl s_client -connect 127.0.0.1:\(port) " + (serverName.map { "-servername \($0) " } ?? "-noservername ")
                + arguments.joined(separator: " ") + " < '\(inputPath)' 2>&1"]
    args = args.map { $0 }
    return try run("/bin/sh", args, timeout: 20).stdout
}
