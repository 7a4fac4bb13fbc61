import Foundation
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// Certificates changed through the runtime API: the same session of commands against Debian's
/// haproxy and hasp gives the same answers, and new handshakes see what was committed.
@Suite(.serialized, .enabled(if: TLSMaterial.opensslAvailable, "needs the openssl command"))
struct TLSRuntimeAPITests {
    struct Run {
        let dir: TempDir
        let child: ChildProcess
        let socket: String
        let port: Int

        init(_ binary: String, _ tls: TLSMaterial, list: String) throws {
            dir = try TempDir()
            socket = dir.path("admin.sock")
            port = try Ports.free()
            let path = try dir.write("proxy.cfg", """
                global
                    stats socket \(socket) level admin
                \(TLSMaterial.httpDefaults)
                frontend fe
                    bind 127.0.0.1:\(port) ssl crt \(tls.a) crt-list \(list)
                    http-request return status 200 content-type text/plain lf-string "crt=%[ssl_f_s_dn(CN)]\\n"
                """)
            child = try ChildProcess(binary, ["-db", "-f", path], dir: dir, name: "proxy")
            let socket = self.socket
            try eventually("\(binary): the stats socket") {
                FileManager.default.fileExists(atPath: socket) && (try? CLIClient.ask(socket, "show info")) != nil
            }
        }

        func ask(_ line: String) throws -> String { try CLIClient.ask(socket, line) }

        func served(_ name: String) throws -> String {
            try curl(["-sk", "--resolve", "\(name):\(port):127.0.0.1", "https://\(name):\(port)/"]).stdout
        }
    }

    static func session(_ binary: String, _ tls: TLSMaterial) throws -> [String] {
        let list = try tls.dir.write("list-\(UUID().uuidString.prefix(6)).txt", "\(tls.b) [alpn http/1.1] b.test\n")
        let run = try Run(binary, tls, list: list)
        defer { run.child.stop() }
        let pem = { (path: String) in (try? String(contentsOfFile: path, encoding: .utf8)) ?? "" }
        var out: [String] = []
        // HAProxy ends an `alpn` option in `show ssl crt-list` with a NUL byte; hasp does not.
        func ask(_ line: String) throws {
            let answer = try run.ask(line).replacingOccurrences(of: list, with: "LIST").replacingOccurrences(of: "\u{0}", with: "")
            out.append("> \(line.prefix(60))\n" + answer)
        }
        try ask("show ssl cert")
        try ask("show ssl cert \(tls.a)")
        try ask("show ssl crt-list")
        try ask("show ssl crt-list -n \(list)")
        try ask("show ssl crt-list \(list)//")
        out.append("before: " + (try run.served("a.test")))
        try ask("set ssl cert \(tls.a) <<\n\(pem(tls.b))")
        try ask("show ssl cert")
        try ask("show ssl cert *\(tls.a)")
        try ask("commit ssl cert \(tls.a)")
        out.append("after commit: " + (try run.served("a.test")))
        try ask("set ssl cert \(tls.dir.path("nope.pem")) <<\n\(pem(tls.b))")
        try ask("set ssl cert \(tls.a) <<\ngarbage\n")
        try ask("abort ssl cert \(tls.a)")
        try ask("commit ssl cert \(tls.a)")
        try ask("new ssl cert \(tls.dir.path("new.pem"))")
        try ask("set ssl cert \(tls.dir.path("new.pem")) <<\n\(pem(tls.wild))")
        try ask("commit ssl cert \(tls.dir.path("new.pem"))")
        // A CA file the configuration did not load is refused: nothing is read at run time.
        try ask("add ssl crt-list \(list) <<\n\(tls.dir.path("new.pem")) [ca-file \(tls.ca) verify optional] x.w.test\n")
        try ask("add ssl crt-list \(list) \(tls.dir.path("new.pem"))")
        out.append("added: " + (try run.served("x.w.test")))
        try ask("del ssl crt-list \(list) \(tls.dir.path("new.pem"))")
        out.append("removed: " + (try run.served("x.w.test")))
        try ask("del ssl cert \(tls.dir.path("new.pem"))")
        try ask("show ssl cert nothere")
        try ask("commit ssl cert \(tls.dir.path("zz"))")
        try ask("abort ssl cert \(tls.dir.path("zz"))")
        return out
    }

    @Test(.enabled(if: StatsDifferentialTests.available, "needs Debian's haproxy"))
    func sameAnswersAsHAProxyAndNewHandshakesSeeTheCommit() throws {
        let tls = try TLSMaterial()
        let theirs = try Self.session(RulesDifferentialTests.haproxy, tls)
        let ours = try Self.session(HaspBinary.path, tls)
        #expect(ours.contains("after commit: crt=b.test\n"))
        #expect(ours.contains("added: crt=*.w.test\n"))
        #expect(theirs.count == ours.count)
        for (a, b) in zip(theirs, ours) { #expect(a == b, "\nhaproxy: \(a.debugDescription)\nhasp:    \(b.debugDescription)") }
    }
}
