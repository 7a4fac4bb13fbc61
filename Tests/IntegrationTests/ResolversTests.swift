import Foundation
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// Debian's dnsmasq (package dnsmasq-base).
let dnsmasqPath = "/usr/sbin/dnsmasq"

/// DNS resolution at run time against a real name server (dnsmasq on a loopback port, started
/// and killed by the test): `server-template` slots filled from A records, scale-up and
/// scale-down within `hold valid`, an address change moving traffic, and a dead name server
/// leaving the last addresses in place.
@Suite(.serialized, .enabled(if: FileManager.default.fileExists(atPath: dnsmasqPath), "needs dnsmasq (dnsmasq-base)"))
struct ResolversTests {
    static let dnsmasq = dnsmasqPath

    /// dnsmasq answering for `*.test` from a hosts file in a directory it watches: a SIGHUP sent
    /// from the test process was not acted on (its children may inherit a blocked signal mask).
    final class NameServer {
        private(set) var child: ChildProcess
        let hosts: String
        let port: Int
        let log: String
        let dir: TempDir

        /// `services`: SRV records, dnsmasq's `--srv-host` values (`<name>,<target>,<port>,<priority>,<weight>`).
        init(dir: TempDir, records: [String], services: [String] = []) throws {
            self.dir = dir
            let folder = dir.path("hosts.d")
            try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
            hosts = folder + "/hosts"
            try (records.joined(separator: "\n") + "\n").write(toFile: hosts, atomically: true, encoding: .utf8)
            port = try Ports.free()
            log = dir.path("dnsmasq.log")
            child = try Self.launch(dir: dir, port: port, folder: folder, log: log, services: services)
        }

        private static func launch(dir: TempDir, port: Int, folder: String, log: String, services: [String]) throws -> ChildProcess {
            let before = ((try? String(contentsOfFile: log, encoding: .utf8)) ?? "").components(separatedBy: "read \(folder)").count
            // In the foreground without debug mode (`--no-daemon` forks a helper that outlives
            // the test's kill), logging to a file.
            let child = try ChildProcess(ResolversTests.dnsmasq, [
                "--keep-in-foreground", "--log-facility=\(log)", "--conf-file=/dev/null", "--port=\(port)", "--listen-address=127.0.0.1", "--bind-interfaces",
                "--no-resolv", "--no-hosts", "--hostsdir=\(folder)", "--local=/test/", "--local-ttl=1", "--user=root",
                "--pid-file=", "--log-queries",
            ] + services.map { "--srv-host=\($0)" }, dir: dir, name: "dnsmasq")
            try eventually("dnsmasq started") {
                ((try? String(contentsOfFile: log, encoding: .utf8)) ?? "").components(separatedBy: "read \(folder)").count > before
            }
            return child
        }

        func replace(_ records: [String]) throws {
            try (records.joined(separator: "\n") + "\n").write(toFile: hosts, atomically: true, encoding: .utf8)
        }

        /// SRV records are command-line options: dnsmasq starts again on the same port with new ones.
        func restart(services: [String]) throws {
            child.stop()
            child = try Self.launch(dir: dir, port: port, folder: dir.path("hosts.d"), log: log, services: services)
        }
    }

    @Test func templatesFollowTheRecordsAndServersTheirAddress() throws {
        let dir = try TempDir()
        let ns = try NameServer(dir: dir, records: ["127.0.0.21 app.test", "127.0.0.22 app.test", "127.0.0.31 single.test"])
        var nameServerStopped = false
        defer { if !nameServerStopped { ns.child.stop() } }
        let (front, solo, app) = (try Ports.free(), try Ports.free(), try Ports.free())
        let socket = dir.path("admin.sock")
        let apps = [21, 22, 23, 31, 32].map { n in
            "listen app\(n)\n    bind 127.0.0.\(n):\(app)\n    http-request return status 200 content-type text/plain string \"\(n)\""
        }.joined(separator: "\n")
        let config = """
            global
                stats socket \(socket) level admin
            resolvers dns
                nameserver ns1 127.0.0.1:\(ns.port)
                hold valid 1s
                hold nx 1s
                timeout resolve 500ms
                timeout retry 500ms
            defaults
                mode http
                timeout client 5s
                timeout server 5s
                timeout connect 1s
            frontend fe
                bind 127.0.0.1:\(front)
                default_backend pool
            frontend fe_solo
                bind 127.0.0.1:\(solo)
                default_backend solo
            backend pool
                server-template web 3 app.test:\(app) resolvers dns init-addr none
            backend solo
                server one single.test:\(app) resolvers dns init-addr none
            \(apps)
            """
        let hasp = try Hasp(config: config, waitFor: [front, solo], arguments: ["-W", "-db"])
        // The name server goes first: Foundation reaps children one at a time, and it waits on
        // the oldest.
        defer {
            if !nameServerStopped { ns.child.stop() }
            nameServerStopped = true
            hasp.stop()
        }
        func rows() throws -> [String] {
            var out: [String] = []
            for line in try CLIClient.ask(socket, "show stat").split(separator: "\n") {
                let f: [Substring] = line.split(separator: ",", omittingEmptySubsequences: false)
                guard f.count > 73, f[0] == "pool" || f[0] == "solo", f[1] != "BACKEND" else { continue }
                out.append("\(f[1]) \(f[17]) \(f[73])")
            }
            return out
        }
        func body(_ port: Int) throws -> String {
            let client = try RawClient(port: port, timeout: 5)
            try client.send("GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            let text = String(decoding: client.readToEnd(), as: UTF8.self)
            return text.components(separatedBy: "\r\n\r\n").dropFirst().joined()
        }

        // The worker binds the stats socket once it serves (the master listens before).
        try eventually("the worker") { FileManager.default.fileExists(atPath: socket) }
        // Two records for three slots: the third waits.
        try eventually(timeout: 10, "the first answers") {
            try rows() == ["web1 no check 127.0.0.21:\(app)", "web2 no check 127.0.0.22:\(app)", "web3 MAINT (resolution) ",
                           "one no check 127.0.0.31:\(app)"]
        }
        let answers = Set(try (0..<6).map { _ in try body(front) })
        #expect(answers == ["21", "22"])
        #expect(try body(solo) == "31")

        // Scale up, then down; the name of `one` moves.
        try ns.replace(["127.0.0.21 app.test", "127.0.0.22 app.test", "127.0.0.23 app.test", "127.0.0.32 single.test"])
        try eventually(timeout: 10, "the scale-up") {
            try rows() == ["web1 no check 127.0.0.21:\(app)", "web2 no check 127.0.0.22:\(app)", "web3 no check 127.0.0.23:\(app)",
                           "one no check 127.0.0.32:\(app)"]
        }
        #expect(try body(solo) == "32")
        try ns.replace(["127.0.0.22 app.test", "127.0.0.23 app.test", "127.0.0.32 single.test"])
        try eventually(timeout: 10, "the scale-down") {
            try rows() == ["web1 MAINT (resolution) ", "web2 no check 127.0.0.22:\(app)", "web3 no check 127.0.0.23:\(app)",
                           "one no check 127.0.0.32:\(app)"]
        }
        #expect(Set(try (0..<6).map { _ in try body(front) }) == ["22", "23"])
        try eventually("HAProxy's lines") {
            hasp.child.stderr.contains("Server pool/web3 ('app.test') is UP/READY (resolves again).")
                && hasp.child.stderr.contains("Server pool/web1 is going DOWN for maintenance (No IP for server ).")
        }

        // A name that no longer exists: after `hold nx`, its server waits; it comes back with it.
        try ns.replace(["127.0.0.22 app.test", "127.0.0.23 app.test"])
        try eventually(timeout: 10, "the name gone") { try rows().last == "one MAINT (resolution) " }
        try ns.replace(["127.0.0.22 app.test", "127.0.0.23 app.test", "127.0.0.32 single.test"])
        try eventually(timeout: 10, "the name back") { try rows().last == "one no check 127.0.0.32:\(app)" }

        // A name server gone: the servers keep their addresses.
        ns.child.stop()
        nameServerStopped = true
        // Several retries go unanswered meanwhile (`timeout retry` 500ms): the address holds all along.
        let until = Date().addingTimeInterval(2.5)
        while Date() < until {
            let last = try rows().last
            #expect(last == "one no check 127.0.0.32:\(app)")
            if last != "one no check 127.0.0.32:\(app)" { break }
            usleep(100_000)
        }
        #expect(try body(solo) == "32")
    }
}
