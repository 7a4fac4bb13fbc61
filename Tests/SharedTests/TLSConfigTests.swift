import Foundation
import Testing
@testable import Shared

/// TLS keywords of `bind`, `server` and `global`, crt-lists, and the files a master records
/// for its workers. Certificates come from the `openssl` command into a bundle in memory.
@Suite(.enabled(if: FileManager.default.isExecutableFile(atPath: "/usr/bin/openssl"), "needs the openssl command"))
struct TLSConfigTests {
    /// PEM texts made once: `a` (certificate and key), `bcrt` and `bkey` (apart).
    static let pems: [String: String] = {
        let dir = NSTemporaryDirectory() + "hasp-tls-\(UUID().uuidString)"
        try? FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        // `system`, not Foundation's `Process`: its `run()` on Linux can crash the test run
        // (see `ChildProcess` in the integration tests).
        _ = system("""
            cd '\(dir)' && for n in a b; do openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
            -keyout $n.key -out $n.crt -days 30 -subj /CN=$n.test 2>/dev/null; done
            """)
        func read(_ name: String) -> String { (try? String(contentsOfFile: dir + "/" + name, encoding: .utf8)) ?? "" }
        return ["a": read("a.crt") + read("a.key"), "bcrt": read("b.crt"), "bkey": read("b.key"), "acrt": read("a.crt")]
    }()

    static func bundle(_ files: [String: String], directories: [String: [String]] = [:]) -> ConfigFiles {
        ConfigFiles(bundle: ConfigFiles.Bundle(files: files.mapValues { Array($0.utf8) }, directories: directories))
    }

    static func parse(_ text: String, files: [String: String], directories: [String: [String]] = [:]) -> ConfigParser.Result {
        ConfigParser.parse([ConfigParser.Source(name: "t.cfg", text: text)], files: bundle(files, directories: directories))
    }

    @Test func bindKeywordsAndGlobalDefaults() throws {
        let result = Self.parse("""
            global
                ssl-default-bind-options ssl-min-ver TLSv1.2 no-tls-tickets
                ssl-default-bind-ciphers ECDHE+AESGCM
                crt-base /certs
                tune.ssl.cachesize 1000
                tune.ssl.lifetime 2m
            frontend fe
                mode http
                bind :443 ssl crt a.pem crt /keys/b.crt alpn h2,http/1.1 strict-sni ssl-max-ver TLSv1.3 ciphersuites TLS_AES_128_GCM_SHA256 curves X25519:P-256
            """, files: ["/certs/a.pem": Self.pems["a"]!, "/keys/b.crt": Self.pems["bcrt"]!, "/keys/b.crt.key": Self.pems["bkey"]!])
        #expect(alerts(result).isEmpty, "\(alerts(result))")
        let global = result.configuration.global.tls
        #expect(global.bindDefaults.minVersion == .tlsv12 && global.bindDefaults.noTickets == true)
        #expect(global.bindDefaults.ciphers == "ECDHE+AESGCM")
        #expect(global.cacheSize == 1000 && global.lifetimeSeconds == 120)
        let bind = try #require(result.configuration.proxies.first?.binds.first)
        #expect(bind.tls.enabled && bind.tls.strictSNI)
        #expect(bind.tls.certificates.map(\.path) == ["/certs/a.pem", "/keys/b.crt"])
        #expect(bind.tls.certificates[0].key == nil && bind.tls.certificates[1].key != nil, "the key beside b.crt is loaded")
        #expect(bind.tls.alpn == ["h2", "http/1.1"])
        #expect(warnings(result).contains { $0.contains("'alpn' : Hasp does not serve HTTP/2 yet") })
        let policy = bind.tls.policy.over(global.bindDefaults)
        #expect(policy.minVersion == .tlsv12 && policy.maxVersion == .tlsv13 && policy.curves == "X25519:P-256")
        #expect(policy.ciphersuites == "TLS_AES_128_GCM_SHA256" && policy.ciphers == "ECDHE+AESGCM")
    }

    @Test func versionRangesFollowNoAndForceOptions() {
        var policy = TLSPolicy()
        policy.disabledVersions = [.sslv3, .tlsv10, .tlsv11]
        #expect(policy.versionRange.min == .tlsv12 && policy.versionRange.max == .tlsv13)
        policy.disabledVersions = [.tlsv13]
        #expect(policy.versionRange.max == .tlsv12)
        policy.forcedVersion = .tlsv12
        #expect(policy.versionRange.min == .tlsv12 && policy.versionRange.max == .tlsv12)
    }

    @Test func crtListLinesCarryOptionsAndFilters() throws {
        let list = """
            # comment

            /c/a.pem [alpn http/1.1 ssl-min-ver TLSv1.3 verify none] www.a.test *.a.test !secret.a.test
            /c/b.crt
            """
        let result = Self.parse("frontend fe\n bind :443 ssl crt-list /c/list\n",
                                files: ["/c/list": list, "/c/a.pem": Self.pems["a"]!, "/c/b.crt": Self.pems["bcrt"]!,
                                        "/c/b.crt.key": Self.pems["bkey"]!])
        #expect(alerts(result).isEmpty, "\(alerts(result))")
        let tls = try #require(result.configuration.proxies.first?.binds.first?.tls)
        #expect(tls.certificates.count == 2)
        #expect(tls.certificates[0].filters == ["www.a.test", "*.a.test", "!secret.a.test"])
        #expect(tls.certificates[0].options?.alpn == ["http/1.1"])
        #expect(tls.certificates[0].options?.policy.minVersion == .tlsv13)
        #expect(tls.certificates[0].options?.verify == TLSVerifyMode.none)
        #expect(tls.certificates[1].filters.isEmpty && tls.certificates[1].options == nil)
        let bad = Self.parse("frontend fe\n bind :443 ssl crt-list /c/list\n",
                             files: ["/c/list": "/c/a.pem [alpn h2 nonsense]\n", "/c/a.pem": Self.pems["a"]!])
        #expect(alerts(bad).first?.contains("'crt-list' : unknown keyword 'nonsense' in file '/c/list' at line 1.") == true, "\(alerts(bad))")
    }

    @Test func directoriesLoadInNameOrderSkippingCompanions() throws {
        let result = Self.parse("frontend fe\n bind :443 ssl crt /d\n",
                                files: ["/d/b.pem": Self.pems["a"]!, "/d/a.pem": Self.pems["a"]!, "/d/a.pem.key": Self.pems["bkey"]!,
                                        "/d/.hidden.pem": "garbage"],
                                directories: ["/d": ["a.pem", "a.pem.key", "b.pem", ".hidden.pem"]])
        #expect(alerts(result).isEmpty, "\(alerts(result))")
        #expect(result.configuration.proxies.first?.binds.first?.tls.certificates.map(\.path) == ["/d/a.pem", "/d/b.pem"])
    }

    @Test func serverKeywordsAndTheirChecks() throws {
        let result = Self.parse("""
            backend be
                server s1 10.0.0.1:443 ssl verify required ca-file /ca.crt sni req.hdr(host) alpn h2,http/1.1 check-ssl check-sni a.test verifyhost a.test no-ssl-reuse ssl-min-ver TLSv1.2
                server s2 10.0.0.2:443 ssl verify none
            """, files: ["/ca.crt": Self.pems["acrt"]!])
        #expect(alerts(result).isEmpty, "\(alerts(result))")
        let servers = try #require(result.configuration.proxies.first?.servers)
        let tls = servers[0].tls
        #expect(tls.enabled && tls.verify == .required && tls.caFile?.path == "/ca.crt")
        #expect(tls.sni == "req.hdr(host)" && tls.checkSSL && tls.checkSNI == "a.test" && tls.verifyHost == "a.test")
        #expect(tls.alpn == ["http/1.1"], "h2 is left out until HTTP/2 exists")
        #expect(tls.noSSLReuse && tls.policy.minVersion == .tlsv12)
        #expect(servers[1].tls.verify == TLSVerifyMode.none)
        let unverified = Self.parse("backend be\n server s1 10.0.0.1:443 ssl\n", files: [:])
        #expect(alerts(unverified).first?.contains("'server be/s1' : verify is enabled by default but no CA file specified.") == true)
        let optedOut = Self.parse("global\n ssl-server-verify none\nbackend be\n server s1 10.0.0.1:443 ssl\n", files: [:])
        #expect(alerts(optedOut).isEmpty)
        let badSNI = Self.parse("backend be\n server s1 10.0.0.1:443 ssl verify none sni nosuchfetch\n", files: [:])
        #expect(alerts(badSNI).first?.contains("'sni' : failed to parse sni expression") == true, "\(alerts(badSNI))")
    }

    @Test func conditionsAboutTheTLSLibrary() throws {
        let openssl = ConditionEvaluator(isDefined: { _ in false }, tlsLibrary: "OpenSSL 3.0.19 27 Jan 2026")
        #expect(try openssl.evaluate("ssllib_name_startswith(OpenSSL)"))
        #expect(try !openssl.evaluate("ssllib_name_startswith(AWS-LC)"))
        #expect(try openssl.evaluate("openssl_version_atleast(1.1.1) && openssl_version_atleast(3.0.0)"))
        #expect(try !openssl.evaluate("openssl_version_atleast(3.1.0)"))
        #expect(try openssl.evaluate("openssl_version_before(3.1.0) && !openssl_version_before(3.0.19)"))
        #expect(try !openssl.evaluate("awslc_api_atleast(1)") && !openssl.evaluate("awslc_api_before(100)"))
        #expect(try openssl.evaluate("feature(OPENSSL)"))
        #expect(throws: ConditionEvaluator.Failure.self) { try openssl.evaluate("openssl_version_atleast(x.y)") }
        // A file written for HAProxy's test suite: the block for this library is the one kept.
        let result = ConfigParser.parse([ConfigParser.Source(name: "t.cfg", text: """
            .if ssllib_name_startswith(AWS-LC)
            frontend aws
            .elif openssl_version_atleast(1.1.1)
            frontend modern
            .else
            frontend old
            .endif
                mode http
            """)], conditions: openssl)
        #expect(alerts(result).isEmpty, "\(alerts(result))")
        #expect(result.configuration.proxies.map { $0.name } == ["modern"])
    }

    @Test func globalOptionErrorsUseHAProxysWords() {
        #expect(alerts(Self.parse("global\n ssl-default-bind-options foo\n", files: [:])).first
                == "config : parsing [t.cfg:2] : unknown option 'foo' on global statement 'ssl-default-bind-options'.")
        #expect(alerts(Self.parse("frontend fe\n bind :443 ssl crt /x.pem ssl-min-ver TLSv1.9\n", files: ["/x.pem": Self.pems["a"]!])).first
                == "config : parsing [t.cfg:2] : 'bind :443' in section 'frontend' : 'TLSv1.9' : unknown ssl/tls version")
    }

    @Test func theMasterRecordsWhatTheWorkerParsesAgain() throws {
        let dir = NSTemporaryDirectory() + "hasp-tls-rec-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try Self.pems["a"]!.write(toFile: dir + "/site.pem", atomically: true, encoding: .utf8)
        let text = "frontend fe\n mode http\n bind :443 ssl crt \(dir)\n"
        let disk = ConfigFiles()
        let first = ConfigParser.parse([ConfigParser.Source(name: "t.cfg", text: text)], files: disk)
        #expect(alerts(first).isEmpty)
        #expect(disk.recorded.directories[dir] == ["site.pem"])
        #expect(disk.recorded.files[dir + "/site.pem"] != nil)
        // The files message carries the record; the worker parses from it, not from disk.
        let message = MasterWorkerMessage.files(disk.recorded)
        let frames = MasterWorkerCodec.encode(message)
        #expect(frames.count == 1)
        try FileManager.default.removeItem(atPath: dir + "/site.pem")
        let again = ConfigParser.parse([ConfigParser.Source(name: "t.cfg", text: text)], files: ConfigFiles(bundle: disk.recorded))
        #expect(alerts(again).isEmpty, "\(alerts(again))")
        #expect(again.configuration.proxies.first?.binds.first?.tls.certificates.first?.pem == first.configuration.proxies.first?.binds.first?.tls.certificates.first?.pem)
    }
}
