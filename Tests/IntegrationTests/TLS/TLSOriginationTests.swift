import Foundation
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// `server ... ssl`, TLS health checks, SNI routing without termination and certificates
/// across reloads, with `openssl s_server` as the TLS servers.
@Suite(.serialized, .enabled(if: TLSMaterial.opensslAvailable, "needs the openssl command"))
struct TLSOriginationTests {
    @Test func serverVerificationSucceedsAndFails() throws {
        let tls = try TLSMaterial()
        let server = try TLSEchoServer(certificate: tls.a, dir: tls.dir)
        defer { server.stop() }
        let port = try Ports.free()
        let hasp = try Hasp(config: """
            defaults
                mode http
                retries 0
                timeout client 5s
                timeout server 5s
                timeout connect 2s
            frontend fe
                bind 127.0.0.1:\(port)
                use_backend untrusted if { path_beg /untrusted }
                use_backend wrongname if { path_beg /wrongname }
                use_backend unverified if { path_beg /unverified }
                default_backend trusted
            backend trusted
                http-response set-header x-bc "%[ssl_bc] %[ssl_bc_protocol]"
                server s1 127.0.0.1:\(server.port) ssl verify required ca-file \(tls.ca) sni str(www.a.test)
            backend untrusted
                server s1 127.0.0.1:\(server.port) ssl verify required ca-file \(tls.b)
            backend wrongname
                server s1 127.0.0.1:\(server.port) ssl verify required ca-file \(tls.ca) sni str(b.test)
            backend unverified
                server s1 127.0.0.1:\(server.port) ssl verify none
            """, waitFor: [port])
        defer { hasp.stop() }
        let good = try curl(["-si", "http://127.0.0.1:\(port)/"])
        #expect(good.stdout.hasPrefix("HTTP/1.1 200"), "\(good.stdout)")
        #expect(good.stdout.lowercased().contains("x-bc: 1 tlsv1.3"), "\(good.stdout)")
        // A server the CA does not vouch for, or a name its certificate does not carry: 503.
        #expect(try curl(["-s", "-o", "/dev/null", "-w", "%{http_code}", "http://127.0.0.1:\(port)/untrusted"]).stdout == "503")
        #expect(try curl(["-s", "-o", "/dev/null", "-w", "%{http_code}", "http://127.0.0.1:\(port)/wrongname"]).stdout == "503")
        #expect(try curl(["-s", "-o", "/dev/null", "-w", "%{http_code}", "http://127.0.0.1:\(port)/unverified"]).stdout == "200")
    }

    @Test func healthChecksOverTLS() throws {
        let tls = try TLSMaterial()
        let server = try TLSEchoServer(certificate: tls.a, dir: tls.dir)
        defer { server.stop() }
        let plain = try TestBackend()
        defer { plain.stop() }
        let port = try Ports.free()
        let hasp = try Hasp(config: """
            global
                stats socket @DIR@/admin.sock level admin
            \(TLSMaterial.httpDefaults)
            frontend fe
                bind 127.0.0.1:\(port)
                default_backend be
            backend be
                server tls 127.0.0.1:\(server.port) ssl verify required ca-file \(tls.ca) check inter 200ms check-sni a.test verifyhost a.test
                server plain 127.0.0.1:\(plain.port) check check-ssl verify none inter 200ms
            """, waitFor: [port])
        defer { hasp.stop() }
        let socket = hasp.dir.path("admin.sock")
        try eventually("the TLS server up after a layer 6 check, the plain one down") {
            let stat = (try? CLIClient.ask(socket, "show stat")) ?? ""
            return stat.contains("be,tls,") && stat.split(separator: "\n").contains { $0.hasPrefix("be,tls,") && $0.contains(",UP,") && $0.contains("L6OK") }
                && stat.split(separator: "\n").contains { $0.hasPrefix("be,plain,") && $0.contains("DOWN") && $0.contains("L6RSP") }
        }
    }

    @Test func dynamicServersSpeakTLSAndAreCheckedLikeConfiguredOnes() throws {
        let tls = try TLSMaterial()
        let server = try TLSEchoServer(certificate: tls.a, dir: tls.dir)
        defer { server.stop() }
        let port = try Ports.free()
        let hasp = try Hasp(config: """
            global
                stats socket @DIR@/admin.sock level admin
            \(TLSMaterial.httpDefaults)
            frontend fe
                bind 127.0.0.1:\(port)
                default_backend be
            backend be
                balance roundrobin
            """, waitFor: [port])
        defer { hasp.stop() }
        let socket = hasp.dir.path("admin.sock")
        try eventually("the stats socket") { FileManager.default.fileExists(atPath: socket) }
        let refused = try CLIClient.ask(socket, "add server be/s1 127.0.0.1:\(server.port) ssl")
        #expect(refused.contains("verify is enabled by default but no CA file specified"), "\(refused)")
        let added = try CLIClient.ask(socket, "add server be/s1 127.0.0.1:\(server.port) ssl verify required ca-file \(tls.ca) sni str(a.test)")
        #expect(added.contains("New server registered."), "\(added)")
        _ = try CLIClient.ask(socket, "enable server be/s1")
        let answer = try curl(["-s", "-o", "/dev/null", "-w", "%{http_code}", "http://127.0.0.1:\(port)/"])
        #expect(answer.stdout == "200", "\(answer)")
    }

    @Test func sniRoutingInTCPModeWithoutTermination() throws {
        let tls = try TLSMaterial()
        let serverA = try TLSEchoServer(certificate: tls.a, dir: tls.dir)
        let serverB = try TLSEchoServer(certificate: tls.b, dir: tls.dir)
        defer { serverA.stop(); serverB.stop() }
        let port = try Ports.free()
        let hasp = try Hasp(config: """
            defaults
                mode tcp
                timeout client 5s
                timeout server 5s
                timeout connect 2s
            frontend sni
                bind 127.0.0.1:\(port)
                tcp-request inspect-delay 5s
                tcp-request content accept if { req_ssl_hello_type 1 }
                use_backend b if { req.ssl_sni -i b.test }
                default_backend a
            backend a
                server a 127.0.0.1:\(serverA.port)
            backend b
                server b 127.0.0.1:\(serverB.port)
            """, waitFor: [port])
        defer { hasp.stop() }
        #expect(try sClient(port, serverName: "B.TEST").contains("subject=CN = b.test"))
        #expect(try sClient(port, serverName: "a.test").contains("subject=CN = a.test"))
        #expect(try sClient(port).contains("subject=CN = a.test"))
    }

    @Test func aReloadServesTheChangedCertificateAndABadOneFailsIt() throws {
        let tls = try TLSMaterial()
        let site = tls.dir.path("site.pem")
        try FileManager.default.copyItem(atPath: tls.a, toPath: site)
        let port = try Ports.free()
        let hasp = try Hasp(config: """
            \(TLSMaterial.httpDefaults)
            frontend fe
                bind 127.0.0.1:\(port) ssl crt \(site)
                http-request return status 200 content-type text/plain lf-string "crt=%[ssl_f_s_dn(CN)]\\n"
            """, waitFor: [port], arguments: ["-W", "-S", "@DIR@/master.sock"])
        defer { hasp.stop() }
        let master = hasp.dir.path("master.sock")
        func served() throws -> String { try curl(["-sk", "https://127.0.0.1:\(port)/"]).stdout }
        #expect(try served() == "crt=a.test\n")
        try FileManager.default.removeItem(atPath: site)
        try FileManager.default.copyItem(atPath: tls.b, toPath: site)
        #expect(try CLIClient.ask(master, "reload").hasPrefix("Success=1"))
        try eventually("the new worker's certificate") { (try? served()) == "crt=b.test\n" }
        // A certificate that does not load fails the reload; the worker keeps serving.
        try "garbage\n".write(toFile: site, atomically: true, encoding: .utf8)
        let failed = try CLIClient.ask(master, "reload")
        #expect(failed.hasPrefix("Success=0"), "\(failed)")
        #expect(failed.contains("unable to load certificate from file '\(site)'"), "\(failed)")
        #expect(try served() == "crt=b.test\n")
    }
}
