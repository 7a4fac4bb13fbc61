import Foundation
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// The same TLS configuration and clients through Debian's haproxy and through hasp: the
/// certificate each name gets, what the TLS fetches say, client-certificate checks and the
/// handshake failure log lines must be the same.
@Suite(.serialized, .enabled(if: TLSMaterial.opensslAvailable && StatsDifferentialTests.available, "needs openssl and Debian's haproxy"))
struct TLSDifferentialTests {
    struct Outcome: Equatable {
        var answers: [String]
        var logs: [String]
    }

    static func outcome(_ binary: String, _ tls: TLSMaterial, certs: String) throws -> Outcome {
        let dir = try TempDir()
        let ports = [try Ports.free(), try Ports.free()]
        let path = try dir.write("proxy.cfg", """
            global
                log stdout format raw local0
            defaults
                mode http
                log global
                timeout client 5s
                timeout server 5s
                timeout connect 2s
            frontend fe
                bind 127.0.0.1:\(ports[0]) ssl crt \(certs) alpn http/1.1
                bind 127.0.0.1:\(ports[1]) name mtls ssl crt \(tls.a) verify optional ca-file \(tls.ca) ssl-min-ver TLSv1.2
                http-request return status 200 content-type text/plain lf-string "sni=%[ssl_fc_sni] has_sni=%[ssl_fc_has_sni] crt=%[ssl_f_s_dn] issuer=%[ssl_f_i_dn] proto=%[ssl_fc_protocol] alpn=%[ssl_fc_alpn] c_used=%[ssl_c_used] c_verify=%[ssl_c_verify] c_dn=%[ssl_c_s_dn] c_cn=%[ssl_c_s_dn(CN)] c_i=%[ssl_c_i_dn] c_err=%[ssl_c_err] ssl=%[ssl_fc] c_serial=%[ssl_c_serial,hex] c_sha1=%[ssl_c_sha1,hex] c_notafter=%[ssl_c_notafter] f_serial=%[ssl_f_serial,hex] f_sha1=%[ssl_f_sha1,hex] f_notbefore=%[ssl_f_notbefore] f_version=%[ssl_f_version] f_sig=%[ssl_f_sig_alg] f_key=%[ssl_f_key_alg] cipher=%[ssl_fc_cipher] keysize=%[ssl_fc_use_keysize] ca_err=%[ssl_c_ca_err] resumed=%[ssl_fc_is_resumed]\\n"
            """)
        let child = try ChildProcess(binary, ["-db", "-f", path], dir: dir, name: "proxy")
        defer { child.stop() }
        try eventually("\(binary) listening") { ports.allSatisfy(Ports.isAccepting) }
        var answers: [String] = []
        for name in ["a.test", "www.a.test", "x.w.test", "y.z.w.test", "b.test", "other.test"] {
            answers.append(try curl(["-sk", "--resolve", "\(name):\(ports[0]):127.0.0.1", "https://\(name):\(ports[0])/"]).stdout)
        }
        answers.append(try curl(["-sk", "https://127.0.0.1:\(ports[0])/"]).stdout)
        answers.append(try curl(["-sk", "--tls-max", "1.2", "--resolve", "a.test:\(ports[0]):127.0.0.1", "https://a.test:\(ports[0])/"]).stdout)
        answers.append(try curl(["-sk", "--cert", tls.client, "https://127.0.0.1:\(ports[1])/"]).stdout)
        answers.append(try curl(["-sk", "https://127.0.0.1:\(ports[1])/"]).stdout)
        answers.append("rogue: \(try curl(["-sk", "--cert", tls.rogue, "https://127.0.0.1:\(ports[1])/"]).status)")
        answers.append("tls1.1: " + (try sClient(ports[0], serverName: "a.test", arguments: ["-tls1_1"]).contains("alert protocol version") ? "refused" : "accepted"))
        let plain = try RawClient(port: ports[0])
        try plain.send("GET / HTTP/1.1\r\nhost: a\r\n\r\n")
        _ = plain.readToEnd()
        try eventually("\(binary): the failures' log lines") { child.stdout.components(separatedBy: "SSL").count >= 4 }
        // Log lines without the client port and the date.
        let logs = child.stdout.split(separator: "\n").filter { $0.contains("SSL") }.map { line -> String in
            guard let close = line.firstIndex(of: "]") else { return String(line) }
            return String(line[line.index(after: close)...])
        }.sorted()
        return Outcome(answers: answers, logs: logs)
    }

    @Test func sameCertificatesFetchesAndFailuresAsHAProxy() throws {
        let tls = try TLSMaterial()
        let certs = try tls.directory([("00-a.pem", tls.a), ("b.pem", tls.b), ("wild.pem", tls.wild)])
        let theirs = try Self.outcome(RulesDifferentialTests.haproxy, tls, certs: certs)
        let ours = try Self.outcome(HaspBinary.path, tls, certs: certs)
        #expect(theirs.answers.count == ours.answers.count)
        for (a, b) in zip(theirs.answers, ours.answers) { #expect(a == b, "\nhaproxy: \(a)\nhasp:    \(b)") }
        #expect(ours.logs == theirs.logs, "\nhaproxy:\n\(theirs.logs.joined(separator: "\n"))\nhasp:\n\(ours.logs.joined(separator: "\n"))")
    }
}

/// haproxy picks among the certificates that answer a name (exact names and wildcards alike)
/// by what the client can verify: ECDSA when it offers an ECDSA signature and cipher, else RSA.
@Suite(.serialized, .enabled(if: TLSMaterial.opensslAvailable && StatsDifferentialTests.available, "needs openssl and Debian's haproxy"))
struct TLSKeyTypeSelectionTests {
    static func keySizes(_ binary: String, certificates: String) throws -> [String] {
        let dir = try TempDir()
        let port = try Ports.free()
        let path = try dir.write("proxy.cfg", """
            \(TLSMaterial.httpDefaults)
            frontend fe
                bind 127.0.0.1:\(port) ssl \(certificates)
                http-request return status 200 content-type text/plain string ok
            """)
        let child = try ChildProcess(binary, ["-db", "-f", path], dir: dir, name: "proxy")
        defer { child.stop() }
        try eventually("\(binary) listening") { Ports.isAccepting(port) }
        var answers: [String] = []
        for name in ["a.test", "x.w.test", "y.w.test", "b.test"] {
            for client in [[], ["-tls1_2", "-cipher", "aRSA"], ["-tls1_2", "-cipher", "aECDSA"], ["-tls1_3"], ["-tls1_2", "-sigalgs", "RSA+SHA256"]] {
                let out = try sClient(port, serverName: name, arguments: client)
                let key = out.split(separator: "\n").first { $0.hasPrefix("Server public key is") } ?? "no handshake"
                answers.append("\(name) \(client.joined(separator: " ")): \(key)")
            }
        }
        return answers
    }

    @Test func dualCertificatesAndWildcardsAreChosenByKeyTypeAsInHAProxy() throws {
        let tls = try TLSMaterial()
        let script = """
            set -e
            cd '\(tls.dir.url.path)'
            openssl req -x509 -newkey rsa:2048 -nodes -keyout rsa.key -out rsa.crt -days 3 -subj /CN=a.test \
                -addext subjectAltName=DNS:a.test,DNS:*.w.test,DNS:y.w.test 2>/dev/null
            cat rsa.crt rsa.key > rsa.pem
            printf '%s\\n%s\\n' '\(tls.wild) x.w.test' '\(tls.dir.path("rsa.pem")) *.w.test !y.w.test' > list.txt
            """
        let made = try run("/bin/sh", ["-c", script])
        #expect(made.status == 0, "\(made.stderr)")
        let certificates = "crt \(tls.a) crt \(tls.dir.path("rsa.pem")) crt \(tls.b) crt-list \(tls.dir.path("list.txt"))"
        let theirs = try Self.keySizes(RulesDifferentialTests.haproxy, certificates: certificates)
        let ours = try Self.keySizes(HaspBinary.path, certificates: certificates)
        #expect(theirs.count == ours.count)
        for (a, b) in zip(theirs, ours) { #expect(a == b, "\nhaproxy: \(a)\nhasp:    \(b)") }
        // What the comparison rests on: both kinds are served for one name.
        #expect(ours.contains("a.test : Server public key is 256 bit") && ours.contains("a.test -tls1_2 -cipher aRSA: Server public key is 2048 bit"), "\(ours)")
    }
}

/// `ssl_s_*`: the certificate the server presented, read in the response, as haproxy reads it.
@Suite(.serialized, .enabled(if: TLSMaterial.opensslAvailable && StatsDifferentialTests.available, "needs openssl and Debian's haproxy"))
struct TLSServerCertificateFetchTests {
    static func headers(_ binary: String, server: Int) throws -> String {
        let dir = try TempDir()
        let port = try Ports.free()
        let path = try dir.write("proxy.cfg", """
            \(TLSMaterial.httpDefaults)
            frontend fe
                bind 127.0.0.1:\(port)
                default_backend be
            backend be
                http-response set-header x-s "dn=%[ssl_s_s_dn] cn=%[ssl_s_s_dn(CN)] i=%[ssl_s_i_dn] serial=%[ssl_s_serial,hex] sha1=%[ssl_s_sha1,hex] na=%[ssl_s_notafter] nb=%[ssl_s_notbefore] v=%[ssl_s_version] sig=%[ssl_s_sig_alg] key=%[ssl_s_key_alg] der=%[ssl_s_der,length]"
                server s1 127.0.0.1:\(server) ssl verify none sni str(a.test)
            """)
        let child = try ChildProcess(binary, ["-db", "-f", path], dir: dir, name: "proxy")
        defer { child.stop() }
        try eventually("\(binary) listening") { Ports.isAccepting(port) }
        let out = try curl(["-s", "-o", "/dev/null", "-D", "-", "http://127.0.0.1:\(port)/"]).stdout
        // Lines end with CR LF, one Character in Swift: split on the scalar.
        return out.components(separatedBy: "\r\n").first { $0.lowercased().hasPrefix("x-s:") } ?? "no header: \(out)"
    }

    @Test func serverCertificateFetchesAreHAProxys() throws {
        let tls = try TLSMaterial()
        let server = try TLSEchoServer(certificate: tls.a, dir: tls.dir)
        defer { server.stop() }
        let theirs = try Self.headers(RulesDifferentialTests.haproxy, server: server.port)
        let ours = try Self.headers(HaspBinary.path, server: server.port)
        #expect(ours == theirs, "\nhaproxy: \(theirs)\nhasp:    \(ours)")
        #expect(ours.contains("cn=a.test") && ours.contains("key=id-ecPublicKey"), "\(ours)")
    }
}

/// CA and CRL files that cannot be loaded: haproxy's two alerts each, on bind and server lines.
@Suite(.enabled(if: TLSMaterial.opensslAvailable && StatsDifferentialTests.available, "needs openssl and Debian's haproxy"))
struct TLSTrustFileAlertTests {
    @Test func unloadableCAAndCRLFilesAreReportedAsHAProxyReportsThem() throws {
        let tls = try TLSMaterial()
        let garbage = try tls.dir.write("garbage.pem", "garbage\n")
        let empty = try tls.dir.write("empty.pem", "")
        let ports = try (0..<3).map { _ in try Ports.free() }
        let config = try tls.dir.write("trust.cfg", """
            \(TLSMaterial.httpDefaults)
            frontend fe
                bind 127.0.0.1:\(ports[0]) ssl crt \(tls.a) ca-file /nonexistent.pem verify required
                bind 127.0.0.1:\(ports[1]) ssl crt \(tls.a) crl-file /nonexistent-crl.pem ca-file \(tls.ca) verify required
                bind 127.0.0.1:\(ports[2]) ssl crt \(tls.a) ca-file \(garbage) verify required
            backend be
                server s1 127.0.0.1:1 ssl ca-file /nope.pem verify required
                server s2 127.0.0.1:1 ssl ca-file \(empty) verify required
            """)
        func alerts(_ binary: String) throws -> [String] {
            let result = try run(binary, ["-c", "-f", config])
            return TLSOCSPTests.messages(result.stderr + result.stdout, "ALERT")
        }
        let theirs = try alerts(RulesDifferentialTests.haproxy)
        let ours = try alerts(HaspBinary.path)
        #expect(ours == theirs, "\nhaproxy:\n\(theirs.joined(separator: "\n"))\nhasp:\n\(ours.joined(separator: "\n"))")
        #expect(ours.contains("config : Couldn't open the ca-file '\(garbage)' (no certificate or crl found)."))
    }
}
