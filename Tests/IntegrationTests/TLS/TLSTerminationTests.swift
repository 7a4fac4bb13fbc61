import Foundation
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// `bind ... ssl`: the real binary terminating TLS for curl and `openssl s_client`, with the
/// certificates of `TLSMaterial`.
@Suite(.serialized, .enabled(if: TLSMaterial.opensslAvailable, "needs the openssl command"))
struct TLSTerminationTests {
    /// What the TLS fetches say, answered by the proxy itself.
    static let facts = #"http-request return status 200 content-type text/plain lf-string "sni=%[ssl_fc_sni] crt=%[ssl_f_s_dn(CN)] proto=%[ssl_fc_protocol] alpn=%[ssl_fc_alpn] c_used=%[ssl_c_used] c_verify=%[ssl_c_verify] c_dn=%[ssl_c_s_dn] c_cn=%[ssl_c_s_dn(CN)] c_issuer=%[ssl_c_i_dn(CN)] ssl=%[ssl_fc]\n""#

    static func https(_ port: Int, _ name: String?, _ extra: [String] = []) throws -> (status: Int32, stdout: String, stderr: String) {
        let host = name ?? "127.0.0.1"
        let resolve = name.map { ["--resolve", "\($0):\(port):127.0.0.1"] } ?? []
        return try curl(["-k"] + resolve + extra + ["https://\(host):\(port)/"], timeout: 10)
    }

    @Test func sniPicksAmongThreeCertificatesTheFirstIsTheDefaultAndStrictSNIRefuses() throws {
        let tls = try TLSMaterial()
        let certs = try tls.directory([("00-a.pem", tls.a), ("b.pem", tls.b), ("wild.pem", tls.wild), (".hidden.pem", tls.b)])
        let ports = [try Ports.free(), try Ports.free()]
        let hasp = try Hasp(config: """
            \(TLSMaterial.httpDefaults)
            frontend fe
                bind 127.0.0.1:\(ports[0]) ssl crt \(certs)
                bind 127.0.0.1:\(ports[1]) ssl crt \(tls.a) crt \(tls.b) strict-sni
                \(Self.facts)
            """, waitFor: ports)
        defer { hasp.stop() }
        let expected: [(String?, String)] = [
            ("a.test", "a.test"), ("www.a.test", "a.test"), ("x.w.test", "*.w.test"),
            // A wildcard covers one label only; unknown names and no SNI get the first one.
            ("y.z.w.test", "a.test"), ("b.test", "b.test"), ("unknown.test", "a.test"), (nil, "a.test"),
        ]
        for (name, cn) in expected {
            let answer = try Self.https(ports[0], name)
            #expect(answer.status == 0, "\(name ?? "no SNI"): \(answer.stderr)")
            #expect(answer.stdout.contains("crt=\(cn) "), "\(name ?? "no SNI") → \(answer.stdout)")
            #expect(answer.stdout.contains("sni=\(name ?? "") "), "\(answer.stdout)")
            #expect(answer.stdout.contains("ssl=1"), "\(answer.stdout)")
        }
        #expect(try Self.https(ports[1], "b.test").stdout.contains("crt=b.test "))
        #expect(try Self.https(ports[1], "unknown.test").status != 0, "strict-sni must refuse an unknown name")
        #expect(try Self.https(ports[1], nil).status != 0, "strict-sni must refuse a client without SNI")
    }

    @Test func crtListLinesBringTheirOwnOptions() throws {
        let tls = try TLSMaterial()
        let list = try tls.dir.write("list.txt", """
            # the default, then a line that only speaks TLS 1.3 and one with its own names
            \(tls.a)
            \(tls.b) [ssl-min-ver TLSv1.3 alpn http/1.1] b.test
            \(tls.wild) [verify none] *.w.test !secret.w.test

            """)
        let port = try Ports.free()
        let hasp = try Hasp(config: """
            \(TLSMaterial.httpDefaults)
            frontend fe
                bind 127.0.0.1:\(port) ssl crt-list \(list)
                \(Self.facts)
            """, waitFor: [port])
        defer { hasp.stop() }
        #expect(try Self.https(port, "a.test", ["--tls-max", "1.2"]).stdout.contains("crt=a.test proto=TLSv1.2 alpn= "))
        #expect(try Self.https(port, "b.test", ["--tls-max", "1.2"]).status != 0, "b.test's line asks for TLS 1.3")
        #expect(try Self.https(port, "b.test").stdout.contains("crt=b.test proto=TLSv1.3 alpn=http/1.1 "))
        #expect(try Self.https(port, "x.w.test").stdout.contains("crt=*.w.test "))
        #expect(try Self.https(port, "secret.w.test").stdout.contains("crt=a.test "), "excluded from the wildcard line")
    }

    @Test func alpnNeverSelectsHTTP2AndOldProtocolsAreRefused() throws {
        let tls = try TLSMaterial()
        let ports = [try Ports.free(), try Ports.free(), try Ports.free()]
        let hasp = try Hasp(config: """
            \(TLSMaterial.httpDefaults)
            frontend fe
                bind 127.0.0.1:\(ports[0]) ssl crt \(tls.a) alpn h2,http/1.1
                bind 127.0.0.1:\(ports[1]) ssl crt \(tls.a) ssl-min-ver TLSv1.3
                bind 127.0.0.1:\(ports[2]) ssl crt \(tls.a)
                \(Self.facts)
            """, waitFor: ports)
        defer { hasp.stop() }
        #expect(hasp.child.stderr.contains("'alpn' : Hasp does not serve HTTP/2 yet"), "\(hasp.child.stderr)")
        let h2 = try curl(["-k", "--http2", "-w", "version=%{http_version}", "https://127.0.0.1:\(ports[0])/"])
        #expect(h2.stdout.contains("alpn=http/1.1 "), "\(h2.stdout)")
        #expect(h2.stdout.contains("version=1.1"), "\(h2.stdout)")
        // No `alpn`: nothing is negotiated, as HAProxy 2.6 does.
        #expect(try Self.https(ports[2], "a.test").stdout.contains("alpn= "))
        // TLS 1.2 is the floor by default; `ssl-min-ver TLSv1.3` raises it.
        #expect(try sClient(ports[2], serverName: "a.test", arguments: ["-tls1_1"]).contains("alert protocol version"))
        #expect(try Self.https(ports[2], "a.test", ["--tls-max", "1.2"]).stdout.contains("proto=TLSv1.2 "))
        #expect(try Self.https(ports[1], "a.test", ["--tls-max", "1.2"]).status != 0)
        #expect(try Self.https(ports[1], "a.test").stdout.contains("proto=TLSv1.3 "))
    }

    @Test func clientCertificatesAreVerifiedAndFailuresAreLogged() throws {
        let tls = try TLSMaterial()
        let port = try Ports.free()
        let hasp = try Hasp(config: """
            global
                log stdout format raw local0
            defaults
                mode http
                log global
                timeout client 5s
                timeout server 5s
                timeout connect 2s
            frontend fe
                bind 127.0.0.1:\(port) ssl crt \(tls.a) verify required ca-file \(tls.ca)
                \(Self.facts)
            """, waitFor: [port])
        defer { hasp.stop() }
        let trusted = try Self.https(port, "a.test", ["--cert", tls.client])
        #expect(trusted.stdout.contains("c_used=1 c_verify=0 c_dn=/CN=client c_cn=client c_issuer=Hasp-Test-CA "), "\(trusted)")
        #expect(try Self.https(port, "a.test").status != 0, "no certificate under verify required")
        #expect(try Self.https(port, "a.test", ["--cert", tls.rogue]).status != 0, "an untrusted certificate")
        try eventually("the handshake failure's log line") {
            hasp.child.stdout.contains("] fe/1: SSL client certificate not trusted")
        }
        // A client that leaves in the middle of a record disturbs nobody else.
        let truncated = try RawClient(port: port)
        try truncated.send([0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xfc, 0x03, 0x03])
        truncated.shutdownWrite()
        _ = truncated.readToEnd()
        try eventually("the truncated handshake's log line") {
            hasp.child.stdout.contains("] fe/1: Connection closed during SSL handshake")
        }
        #expect(try Self.https(port, "a.test", ["--cert", tls.client]).stdout.contains("c_used=1"))
        // Plain HTTP on the TLS port is a handshake failure, logged with HAProxy's words.
        let raw = try RawClient(port: port)
        try raw.send("GET / HTTP/1.1\r\nhost: a\r\n\r\n")
        _ = raw.readToEnd()
        try eventually("the plain request's log line") { hasp.child.stdout.contains("] fe/1: SSL handshake failure") }
    }

    @Test func theHTTPSRedirectPatternAndTLSInTCPMode() throws {
        let tls = try TLSMaterial()
        let backend = try TestBackend()
        defer { backend.stop() }
        let ports = [try Ports.free(), try Ports.free()]
        let hasp = try Hasp(config: """
            defaults
                timeout client 5s
                timeout server 5s
                timeout connect 2s
            frontend web
                mode http
                bind 127.0.0.1:\(ports[0])
                http-request redirect scheme https code 301 if !{ ssl_fc }
            listen tcp-tls
                mode tcp
                bind 127.0.0.1:\(ports[1]) ssl crt \(tls.a)
                server app 127.0.0.1:\(backend.port)
            """, waitFor: ports)
        defer { hasp.stop() }
        let redirect = try curl(["-si", "http://example.test:\(ports[0])/path?q=1", "--connect-to", "example.test:\(ports[0]):127.0.0.1:\(ports[0])"])
        #expect(redirect.stdout.contains("HTTP/1.1 301"), "\(redirect.stdout)")
        #expect(redirect.stdout.lowercased().contains("location: https://example.test:\(ports[0])/path?q=1"), "\(redirect.stdout)")
        // TCP mode: the bytes under TLS reach the server in clear.
        let answer = try Self.https(ports[1], "a.test")
        #expect(answer.status == 0, "\(answer.stderr)")
        #expect(!answer.stdout.isEmpty)
    }

    @Test func aProxyHeaderBeforeTheHandshakeAndSNIRoutingOfTerminatedTCP() throws {
        let tls = try TLSMaterial()
        let ports = [try Ports.free(), try Ports.free(), try Ports.free(), try Ports.free()]
        let hasp = try Hasp(config: """
            defaults
                timeout client 5s
                timeout server 5s
                timeout connect 2s
            frontend fe
                mode http
                bind 127.0.0.1:\(ports[0]) accept-proxy ssl crt \(tls.a)
                \(Self.facts.replacingOccurrences(of: "sni=", with: "src=%[src] sni="))
            listen tcp-sni
                mode tcp
                bind 127.0.0.1:\(ports[1]) ssl crt \(tls.a) crt \(tls.b)
                use_backend to-b if { ssl_fc_sni b.test }
                server a 127.0.0.1:\(ports[2])
            backend to-b
                mode tcp
                server b 127.0.0.1:\(ports[3])
            listen app-a
                mode http
                bind 127.0.0.1:\(ports[2])
                http-request return status 200 content-type text/plain string "app a"
            listen app-b
                mode http
                bind 127.0.0.1:\(ports[3])
                http-request return status 200 content-type text/plain string "app b"
            """, waitFor: ports)
        defer { hasp.stop() }
        // The PROXY header travels in clear before the ClientHello.
        let script = """
            import socket, ssl
            s = socket.create_connection(("127.0.0.1", \(ports[0])))
            s.sendall(b"PROXY TCP4 10.9.8.7 127.0.0.1 40000 443\\r\\n")
            c = ssl.create_default_context(); c.check_hostname = False; c.verify_mode = ssl.CERT_NONE
            t = c.wrap_socket(s, server_hostname="a.test")
            t.sendall(b"GET / HTTP/1.1\\r\\nhost: a.test\\r\\nconnection: close\\r\\n\\r\\n")
            data = b""
            while True:
                chunk = t.recv(4096)
                if not chunk: break
                data += chunk
            print(data.decode())
            """
        let proxied = try run("/usr/bin/python3", ["-c", script])
        #expect(proxied.stdout.contains("src=10.9.8.7 sni=a.test "), "\(proxied)")
        // In TCP mode the backend is chosen once the handshake told the SNI.
        #expect(try Self.https(ports[1], "b.test").stdout == "app b")
        #expect(try Self.https(ports[1], "a.test").stdout == "app a")
    }

    /// DHE key exchange: the certificate file's own DH parameters, else `ssl-dh-param-file`'s,
    /// else with `tune.ssl.default-dh-param` OpenSSL's built-in group of the key's size, else no
    /// DHE at all (the same answers as haproxy 2.6 on the same files). The master reads the file
    /// and hands it to the worker (`-W`).
    @Test func dhParametersComeFromTheCertificateTheGlobalFileOrTheDefault() throws {
        let dir = try TempDir()
        let d = dir.url.path
        let script = """
        set -e
        cd '\(d)'
        openssl req -x509 -newkey rsa:2048 -nodes -keyout rsa.key -out rsa.crt -days 3 -subj /CN=rsa.test 2>/dev/null
        cat rsa.crt rsa.key > rsa.pem
        openssl genpkey -genparam -algorithm DH -pkeyopt group:ffdhe3072 -out dh3072.pem 2>/dev/null
        openssl genpkey -genparam -algorithm DH -pkeyopt group:ffdhe4096 -out dh4096.pem 2>/dev/null
        cat rsa.pem dh4096.pem > rsadh.pem
        """
        let made = try run("/bin/sh", ["-c", script])
        try #require(made.status == 0, "\(made.stderr)")
        func serverKey(_ port: Int) throws -> String {
            let out = try sClient(port, arguments: ["-tls1_2", "-cipher", "DHE-RSA-AES128-GCM-SHA256"])
            return out.split(separator: "\n").first { $0.hasPrefix("Server Temp Key:") }.map(String.init) ?? "none"
        }
        let ports = [try Ports.free(), try Ports.free()]
        func config(_ global: String) -> String {
            """
            global
                \(global)
            \(TLSMaterial.httpDefaults)
            frontend fe
                bind 127.0.0.1:\(ports[0]) ssl crt \(d)/rsadh.pem
                bind 127.0.0.1:\(ports[1]) ssl crt \(d)/rsa.pem
                http-request return status 200
            """
        }
        do {
            let hasp = try Hasp(config: config("ssl-dh-param-file \(d)/dh3072.pem"), waitFor: ports, arguments: ["-W", "-db"])
            defer { hasp.stop() }
            #expect(try serverKey(ports[0]) == "Server Temp Key: DH, 4096 bits")
            #expect(try serverKey(ports[1]) == "Server Temp Key: DH, 3072 bits")
        }
        do {
            let hasp = try Hasp(config: config("tune.ssl.default-dh-param 2048"), waitFor: ports)
            defer { hasp.stop() }
            #expect(try serverKey(ports[0]) == "Server Temp Key: DH, 4096 bits")
            #expect(try serverKey(ports[1]) == "Server Temp Key: DH, 2048 bits")
        }
        do {
            let hasp = try Hasp(config: config("maxconn 100"), waitFor: ports)
            defer { hasp.stop() }
            #expect(try serverKey(ports[1]) == "none")
        }
        let bad = try dir.write("bad.cfg", config("ssl-dh-param-file \(d)/rsa.pem"))
        let result = try run(HaspBinary.path, ["-c", "-f", bad])
        #expect(result.status == 1)
        #expect(result.stderr.contains("'ssl-dh-param-file': unable to load DH parameters from file <\(d)/rsa.pem>."), "\(result.stderr)")
    }

    /// `tls-ticket-keys`: a ticket sealed by haproxy 2.6 resumes on hasp and the other way
    /// round when both read the same key file (TLS 1.2 and 1.3), and hasp refuses bad files
    /// with haproxy's words.
    @Test(.enabled(if: StatsDifferentialTests.available, "needs Debian's haproxy"))
    func ticketsSealedWithSharedKeysResumeAcrossHaproxyAndHasp() throws {
        let tls = try TLSMaterial()
        var lines = ""
        for _ in 0..<4 { lines += Data((0..<80).map { _ in UInt8.random(in: 0...255) }).base64EncodedString() + "\n" }
        let keys = try tls.dir.write("tickets.keys", lines)
        let ports = [try Ports.free(), try Ports.free()]
        func config(_ port: Int) -> String {
            """
            \(TLSMaterial.httpDefaults)
            frontend fe
                bind 127.0.0.1:\(port) ssl crt \(tls.a) tls-ticket-keys \(keys)
                http-request return status 200
            """
        }
        let theirs = try Hasp(config: config(ports[0]), waitFor: [ports[0]], binary: RulesDifferentialTests.haproxy)
        defer { theirs.stop() }
        let ours = try Hasp(config: config(ports[1]), waitFor: [ports[1]])
        defer { ours.stop() }
        for version in ["-tls1_2", "-tls1_3"] {
            for (from, to) in [(ports[0], ports[1]), (ports[1], ports[0])] {
                let session = tls.dir.path("session-\(version)-\(from)")
                _ = try sClient(from, serverName: "a.test", arguments: [version, "-sess_out", session, "-ign_eof"],
                                input: "GET / HTTP/1.0\r\n\r\n")
                let resumed = try sClient(to, serverName: "a.test", arguments: [version, "-sess_in", session])
                #expect(resumed.contains("Reused, "), "\(version) \(from) -> \(to): \(resumed)")
            }
        }
        for (content, message) in [("x\n", "unable to decode base64 key on line 1"),
                                   (String(lines.split(separator: "\n")[0]) + "\n", "please supply at least 3 keys in the tls-tickets-file")] {
            let bad = try tls.dir.write("bad.keys", content)
            let path = try tls.dir.write("bad.cfg", config(1).replacingOccurrences(of: keys, with: bad))
            let result = try run(HaspBinary.path, ["-c", "-f", path])
            #expect(result.status == 1 && result.stderr.contains("'\(bad)' : \(message)"), "\(result.stderr)")
        }
    }

    @Test func badCertificatesAreRefusedWithTheFileAndLine() throws {
        let tls = try TLSMaterial()
        let garbage = try tls.dir.write("garbage.pem", "not a certificate\n")
        let keyless = tls.dir.path("a.crt")
        let mismatch = try tls.dir.write("mismatch.pem", (try String(contentsOfFile: tls.dir.path("a.crt"), encoding: .utf8))
                                          + (try String(contentsOfFile: tls.dir.path("b.key"), encoding: .utf8)))
        let cases: [(String, String)] = [
            ("crt \(garbage)", "'bind 127.0.0.1:1' in section 'frontend' : unable to load certificate from file '\(garbage)'."),
            ("crt \(keyless)", "No Private Key found in '\(keyless).key'."),
            ("crt \(mismatch)", "inconsistencies between private key and certificate loaded '\(mismatch)'."),
            ("crt \(tls.dir.path("missing.pem"))", "unable to stat SSL certificate from file '\(tls.dir.path("missing.pem"))' : No such file or directory."),
            ("", "Proxy 'fe': no SSL certificate specified for bind '127.0.0.1:1' at [@CFG@:3] (use 'crt')."),
            ("crt \(tls.a) ciphers NOPE", "Proxy 'fe': unable to set SSL cipher list to 'NOPE' for bind '127.0.0.1:1' at [@CFG@:3]."),
            ("crt \(tls.a) verify required", "Proxy 'fe': verify is enabled but no CA file specified for bind '127.0.0.1:1' at [@CFG@:3]."),
        ]
        for (options, message) in cases {
            let dir = try TempDir()
            let path = try dir.write("hasp.cfg", "frontend fe\n    mode http\n    bind 127.0.0.1:1 ssl \(options)\n")
            let result = try run(HaspBinary.path, ["-c", "-f", path])
            #expect(result.status == 1, "\(options): \(result.stderr)")
            let wanted = message.replacingOccurrences(of: "@CFG@", with: path)
            #expect(result.stderr.contains(wanted), "\(options):\n\(result.stderr)")
            #expect(!result.stderr.contains("PRIVATE KEY-----"))
        }
    }
}
