import Foundation
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// SRV records, `show resolvers`, `set server fqdn`, name servers over TCP, health checks on a
/// moving address and the reload, against dnsmasq on loopback.
extension ResolversTests {
    /// `show stat` rows of `backend`'s servers: name, status, weight, address.
    static func rows(_ socket: String, _ backend: String) throws -> [String] {
        var out: [String] = []
        for line in try CLIClient.ask(socket, "show stat").split(separator: "\n") {
            let f: [Substring] = line.split(separator: ",", omittingEmptySubsequences: false)
            guard f.count > 73, f[0] == backend, f[1] != "BACKEND", f[1] != "FRONTEND" else { continue }
            out.append("\(f[1]) \(f[17]) \(f[18]) \(f[73])")
        }
        return out
    }

    /// `show resolvers` as numbers: per name server, each counter.
    static func counters(_ text: String) -> [String: [String: Int]] {
        var counters: [String: [String: Int]] = [:]
        var current = ""
        for line in text.split(separator: "\n") {
            if line.hasPrefix(" nameserver ") { current = String(line.dropFirst(12).dropLast()) }
            let f = line.split(separator: ":")
            if f.count == 2, let n = Int(f[1].trimmingCharacters(in: .whitespaces)) { counters[current, default: [:]][f[0].trimmingCharacters(in: .whitespaces)] = n }
        }
        return counters
    }

    static func body(_ port: Int) throws -> String {
        let client = try RawClient(port: port, timeout: 5)
        try client.send("GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        let text = String(decoding: client.readToEnd(), as: UTF8.self)
        return text.components(separatedBy: "\r\n\r\n").dropFirst().joined()
    }

    static func apps(_ listeners: [(ip: String, port: Int, body: String)]) -> String {
        listeners.map { l in
            "listen app_\(l.body)\n    bind \(l.ip):\(l.port)\n    http-request return status 200 content-type text/plain string \"\(l.body)\""
        }.joined(separator: "\n")
    }

    /// The global, resolvers and defaults sections the tests share: one name server, short
    /// timers.
    static func head(socket: String, nameserver: String, more nameservers: [String] = [], global: String = "") -> String {
        """
        global
            stats socket \(socket) level admin
        \(global)
        resolvers dns
            nameserver ns1 \(nameserver)
        \(nameservers.map { "    nameserver " + $0 }.joined(separator: "\n"))
            hold valid 1s
            hold nx 1s
            hold other 1s
            timeout resolve 300ms
            timeout retry 300ms
        defaults
            mode http
            timeout client 5s
            timeout server 5s
            timeout connect 1s
        """
    }

    @Test func serviceRecordsFillTheSlotsWithTheirPortsAndWeights() throws {
        let dir = try TempDir()
        let (pa, pb, pc) = (try Ports.free(), try Ports.free(), try Ports.free())
        let service = "_http._tcp.svc.test"
        let ns = try NameServer(dir: dir, records: ["127.0.0.21 a.test", "127.0.0.22 b.test", "127.0.0.23 c.test"],
                                services: ["\(service),a.test,\(pa),0,100", "\(service),b.test,\(pb),0,1000"])
        var nameServerStopped = false
        defer { if !nameServerStopped { ns.child.stop() } }
        let front = try Ports.free()
        let socket = dir.path("admin.sock")
        let config = """
            \(Self.head(socket: socket, nameserver: "127.0.0.1:\(ns.port)"))
            frontend fe
                bind 127.0.0.1:\(front)
                default_backend pool
            backend pool
                balance roundrobin
                server-template srv 3 \(service) resolvers dns init-addr none
            \(Self.apps([("127.0.0.21", pa, "a"), ("127.0.0.22", pb, "b"), ("127.0.0.23", pc, "c")]))
            """
        let hasp = try Hasp(config: config, waitFor: [front], arguments: ["-db"])
        try eventually("the stats socket") { FileManager.default.fileExists(atPath: socket) }
        defer {
            // In the order they started (the name server restarts): Foundation reaps its
            // children oldest first.
            for child in [ns.child, hasp.child].sorted(by: { $0.pid < $1.pid }) { child.stop() }
            nameServerStopped = true
        }
        // Which slot gets which record follows the answer's order: compare without the names.
        func slots() throws -> Set<String> {
            Set(try Self.rows(socket, "pool").map { $0.split(separator: " ", maxSplits: 1)[1].description })
        }
        // Two records for three slots; weights 100 and 1000 become 1 and 4.
        try eventually(timeout: 10, "the SRV answer") {
            try slots() == ["no check 1 127.0.0.21:\(pa)", "no check 4 127.0.0.22:\(pb)", "MAINT (resolution) 1 "]
        }
        #expect(Set(try (0..<10).map { _ in try Self.body(front) }) == ["a", "b"])
        let state = try CLIClient.ask(socket, "show servers state pool").split(separator: "\n").dropFirst(2).map { line in
            let f = line.split(separator: " ")
            return "\(f[6]) \(f[17]) \(f[18]) \(f[19])"
        }
        // HAProxy's columns: admin state (0x40: the name came at run time), fqdn, port, srvrecord.
        #expect(Set(state) == ["64 a.test \(pa) \(service)", "64 b.test \(pb) \(service)", "32 - 0 \(service)"])

        // Scale up to three records, then down to one.
        try ns.restart(services: ["\(service),a.test,\(pa),0,100", "\(service),b.test,\(pb),0,1000", "\(service),c.test,\(pc),0,2560"])
        try eventually(timeout: 10, "the scale-up") {
            try slots() == ["no check 1 127.0.0.21:\(pa)", "no check 4 127.0.0.22:\(pb)", "no check 10 127.0.0.23:\(pc)"]
        }
        #expect(Set(try (0..<15).map { _ in try Self.body(front) }) == ["a", "b", "c"])
        try ns.restart(services: ["\(service),b.test,\(pb),0,1000"])
        try eventually(timeout: 10, "the scale-down") {
            try Self.rows(socket, "pool").filter { $0.contains("MAINT (resolution)") }.count == 2
                && slots().contains("no check 4 127.0.0.22:\(pb)")
        }
        #expect(Set(try (0..<6).map { _ in try Self.body(front) }) == ["b"])
        try eventually("HAProxy's reason") { hasp.child.stderr.contains("is going DOWN for maintenance (entry removed from SRV record).") }
    }

    @Test func fqdnChangesAndHealthChecksFollowTheNameOverATCPNameServer() throws {
        let dir = try TempDir()
        let ns = try NameServer(dir: dir, records: ["127.0.0.31 one.test", "127.0.0.32 two.test"])
        // Only TCP reaches the name server: socat relays TCP to dnsmasq's TCP port.
        let relayPort = try Ports.free()
        let relay = try ChildProcess("/usr/bin/socat", ["TCP-LISTEN:\(relayPort),bind=127.0.0.1,reuseaddr,fork", "TCP:127.0.0.1:\(ns.port)"],
                                     dir: dir, name: "socat")
        var helpersStopped = false
        // Oldest first: Foundation reaps its children in the order they started.
        func stopHelpers() {
            guard !helpersStopped else { return }
            helpersStopped = true
            ns.child.stop()
            relay.stop()
        }
        defer { stopHelpers() }
        try eventually("the relay") { Ports.isAccepting(relayPort) }
        let (front, app) = (try Ports.free(), try Ports.free())
        let socket = dir.path("admin.sock")
        let config = """
            \(Self.head(socket: socket, nameserver: "tcp@127.0.0.1:\(relayPort)"))
            frontend fe
                bind 127.0.0.1:\(front)
                default_backend solo
            backend solo
                server one one.test:\(app) resolvers dns init-addr none check inter 200ms fall 1 rise 1
                server fixed 127.0.0.1:\(app) disabled
            \(Self.apps([("127.0.0.31", app, "31"), ("127.0.0.32", app, "32")]))
            """
        let hasp = try Hasp(config: config, waitFor: [front], arguments: ["-db"])
        try eventually("the stats socket") { FileManager.default.fileExists(atPath: socket) }
        defer {
            stopHelpers()
            hasp.stop()
        }
        try eventually(timeout: 10, "the first answer over TCP") { try Self.rows(socket, "solo").first == "one UP 1 127.0.0.31:\(app)" }
        #expect(try Self.body(front) == "31")

        // HAProxy's answers and checks of `set server fqdn`.
        #expect(try CLIClient.ask(socket, "set server solo/one fqdn two.test") == "solo/one changed its FQDN from one.test to two.test by 'stats socket command'\n\n")
        #expect(try CLIClient.ask(socket, "set server solo/one fqdn two.test") == "no need to change the FDQN by 'stats socket command'\n\n")
        #expect(try CLIClient.ask(socket, "set server solo/one fqdn bad/name") == "invalid fqdn 'bad/name' by 'stats socket command'\n\n")
        #expect(try CLIClient.ask(socket, "set server solo/fixed fqdn two.test") == "set server <b>/<s> fqdn failed because no resolution is configured.\n\n")
        #expect(try CLIClient.ask(socket, "set server solo/one fqdn") == "set server <b>/<s> fqdn requires a FQDN.\n\n")
        try eventually(timeout: 10, "the new name's address") { try Self.rows(socket, "solo").first == "one UP 1 127.0.0.32:\(app)" }
        #expect(try Self.body(front) == "32")

        // The name moves where nothing listens: the health check, following it, fails.
        try ns.replace(["127.0.0.31 one.test", "127.0.0.39 two.test"])
        try eventually(timeout: 10, "the check on the new address") { try Self.rows(socket, "solo").first == "one DOWN 1 127.0.0.39:\(app)" }
        try ns.replace(["127.0.0.31 one.test", "127.0.0.32 two.test"])
        try eventually(timeout: 10, "the check back up") { try Self.rows(socket, "solo").first == "one UP 1 127.0.0.32:\(app)" }

        let counters = try CLIClient.ask(socket, "show resolvers dns")
        #expect(counters.hasPrefix("Resolvers section dns\n nameserver ns1:\n  sent:        "))
        let valid = counters.split(separator: "\n").first { $0.hasPrefix("  valid:") }.flatMap { Int($0.split(separator: " ").last ?? "") } ?? 0
        #expect(valid >= 3)
        #expect(try CLIClient.ask(socket, "show resolvers nope") == "Can't find that resolvers section\n\n")
    }

    /// The counters' lines against haproxy 2.6 running the same configuration at the same
    /// name servers (one answering, one dead): the same sections, labels and layout.
    @Test(.enabled(if: FileManager.default.fileExists(atPath: DifferentialCheckTests.haproxy), "needs Debian's haproxy"))
    func showResolversHasHAProxysLayout() throws {
        let dir = try TempDir()
        let ns = try NameServer(dir: dir, records: ["127.0.0.31 one.test"])
        defer { ns.child.stop() }
        let dead = try Ports.free()
        func run(_ binary: String) throws -> (String, [String: [String: Int]]) {
            let front = try Ports.free()
            let socket = dir.path("\(front).sock")
            let config = """
                global
                    stats socket \(socket) level admin
                resolvers dns
                    nameserver live 127.0.0.1:\(ns.port)
                    nameserver dead 127.0.0.1:\(dead)
                    hold valid 1s
                    hold nx 1s
                    timeout resolve 300ms
                    timeout retry 300ms
                defaults
                    mode http
                    timeout client 5s
                    timeout server 5s
                    timeout connect 1s
                listen fe
                    bind 127.0.0.1:\(front)
                    server one one.test:80 resolvers dns init-addr none
                    server two none.test:80 resolvers dns init-addr none
                """
            let hasp = try Hasp(config: config, waitFor: [front], arguments: ["-db"], binary: binary)
            defer { hasp.stop() }
            try eventually("the stats socket") { FileManager.default.fileExists(atPath: socket) }
            try eventually(timeout: 10, "answers") { try Self.rows(socket, "fe").first == "one no check 1 127.0.0.31:80" }
            // Both name servers have been asked a few times.
            var text = ""
            var counters: [String: [String: Int]] = [:]
            try eventually(timeout: 10, "counters") {
                text = try CLIClient.ask(socket, "show resolvers")
                counters = Self.counters(text)
                return counters["live"]?["valid"] ?? 0 >= 2 && counters["live"]?["nx"] ?? 0 >= 2 && counters["live"]?["sent"] ?? 0 >= 4
                    && (counters["dead"]?["snd_error"] ?? 0) + (counters["dead"]?["timeout"] ?? 0) >= 1
            }
            let layout = text.replacingOccurrences(of: "[0-9]+\n", with: "N\n", options: .regularExpression)
            return (layout, counters)
        }
        let (theirs, _) = try run(DifferentialCheckTests.haproxy)
        let (ours, counters) = try run(HaspBinary.path)
        #expect(ours == theirs)
        #expect(counters["live"]?["valid"] ?? 0 >= 2)
        #expect(counters["live"]?["nx"] ?? 0 >= 2)
        #expect(counters["live"]?["sent"] ?? 0 >= 4)
        #expect((counters["dead"]?["snd_error"] ?? 0) + (counters["dead"]?["timeout"] ?? 0) >= 1)
    }

    @Test func aReloadKeepsTheResolvedAddresses() throws {
        let dir = try TempDir()
        let ns = try NameServer(dir: dir, records: ["127.0.0.31 one.test", "127.0.0.32 two.test"])
        var nameServerStopped = false
        defer { if !nameServerStopped { ns.child.stop() } }
        let (front, app) = (try Ports.free(), try Ports.free())
        let socket = dir.path("admin.sock")
        let config = """
            \(Self.head(socket: socket, nameserver: "127.0.0.1:\(ns.port)"))
            frontend fe
                bind 127.0.0.1:\(front)
                default_backend solo
            backend solo
                server one one.test:\(app) resolvers dns init-addr none
            \(Self.apps([("127.0.0.31", app, "31"), ("127.0.0.32", app, "32")]))
            """
        let hasp = try Hasp(config: config, waitFor: [front], arguments: ["-W", "-db"])
        defer {
            if !nameServerStopped { ns.child.stop() }
            nameServerStopped = true
            hasp.stop()
        }
        try eventually("the worker") { FileManager.default.fileExists(atPath: socket) }
        try eventually(timeout: 10, "the first answer") { try Self.rows(socket, "solo") == ["one no check 1 127.0.0.31:\(app)"] }
        #expect(try Self.body(front) == "31")
        _ = try CLIClient.ask(socket, "set server solo/one fqdn two.test")
        try eventually(timeout: 10, "the new name") { try Self.rows(socket, "solo") == ["one no check 1 127.0.0.32:\(app)"] }
        // No name server any more: only the previous worker can tell the new one.
        ns.child.stop()
        nameServerStopped = true
        let loads = hasp.child.stderr.components(separatedBy: "Loading success.").count
        hasp.child.signal(SIGUSR2)
        try eventually("the new worker") { hasp.child.stderr.components(separatedBy: "Loading success.").count > loads }
        try eventually("its stats socket") { try Self.rows(socket, "solo") == ["one no check 1 127.0.0.32:\(app)"] }
        #expect(try Self.body(front) == "32")
        let state = try CLIClient.ask(socket, "show servers state solo").split(separator: "\n").last?.split(separator: " ") ?? []
        #expect(state.count > 18 && state[6] == "64" && state[17] == "two.test")
    }
}

extension ResolversTests {
    /// Name servers that answer garbage, or a truncated header under the question's own ID,
    /// beside one that answers: the names resolve, the worker goes on, the bad ones count
    /// their unanswered questions.
    @Test func nameServersAnsweringGarbageChangeNothing() throws {
        let dir = try TempDir()
        let ns = try NameServer(dir: dir, records: ["127.0.0.31 one.test"])
        let (short, garbage) = (try Ports.free(), try Ports.free())
        // socat hands each datagram to a command and sends back what it prints: the first 14
        // bytes of the question (its ID and a cut header), or text.
        let shortServer = try ChildProcess("/usr/bin/socat", ["UDP4-RECVFROM:\(short),bind=127.0.0.1,fork", "SYSTEM:head -c 14"], dir: dir, name: "short")
        let garbageServer = try ChildProcess("/usr/bin/socat", ["UDP4-RECVFROM:\(garbage),bind=127.0.0.1,fork", "SYSTEM:echo garbage-garbage-garbage"],
                                             dir: dir, name: "garbage")
        let (front, app) = (try Ports.free(), try Ports.free())
        let socket = dir.path("admin.sock")
        let config = """
            \(Self.head(socket: socket, nameserver: "127.0.0.1:\(ns.port)", more: ["short 127.0.0.1:\(short)", "garbage 127.0.0.1:\(garbage)"]))
            frontend fe
                bind 127.0.0.1:\(front)
                default_backend solo
            backend solo
                server one one.test:\(app) resolvers dns init-addr none
            \(Self.apps([("127.0.0.31", app, "31")]))
            """
        let hasp = try Hasp(config: config, waitFor: [front], arguments: ["-db"])
        defer {
            for child in [ns.child, shortServer, garbageServer, hasp.child] { child.stop() }
        }
        try eventually("the stats socket") { FileManager.default.fileExists(atPath: socket) }
        try eventually(timeout: 10, "the answer") { try Self.rows(socket, "solo") == ["one no check 1 127.0.0.31:\(app)"] }
        #expect(try Self.body(front) == "31")
        var counters: [String: [String: Int]] = [:]
        try eventually(timeout: 10, "unanswered questions counted") {
            counters = Self.counters(try CLIClient.ask(socket, "show resolvers dns"))
            return (counters["short"]?["timeout"] ?? 0) >= 2 && (counters["garbage"]?["timeout"] ?? 0) >= 2
        }
        #expect(counters["short"]?["valid"] == 0 && counters["garbage"]?["valid"] == 0)
        #expect(counters["ns1"]?["valid"] ?? 0 >= 1)
        #expect(try Self.rows(socket, "solo") == ["one no check 1 127.0.0.31:\(app)"])
    }

    /// `server-state-file`: a new process with no name server starts from the saved names and
    /// addresses (`srv_addr`, `srv_fqdn`).
    @Test func aServerStateFileCarriesResolvedAddresses() throws {
        let dir = try TempDir()
        let ns = try NameServer(dir: dir, records: ["127.0.0.31 one.test", "127.0.0.32 two.test"])
        var nameServerStopped = false
        defer { if !nameServerStopped { ns.child.stop() } }
        let (front, app) = (try Ports.free(), try Ports.free())
        let socket = dir.path("admin.sock")
        let stateFile = dir.path("servers.state")
        let config = """
            \(Self.head(socket: socket, nameserver: "127.0.0.1:\(ns.port)", global: "    server-state-file \(stateFile)"))
                load-server-state-from-file global
            frontend fe
                bind 127.0.0.1:\(front)
                default_backend solo
            backend solo
                server one one.test:\(app) resolvers dns init-addr last,none
            \(Self.apps([("127.0.0.31", app, "31"), ("127.0.0.32", app, "32")]))
            """
        do {
            let first = try Hasp(config: config, waitFor: [front], arguments: ["-db"])
            defer {
                ns.child.stop()
                nameServerStopped = true
                first.stop()
            }
            try eventually("the stats socket") { FileManager.default.fileExists(atPath: socket) }
            try eventually(timeout: 10, "the first answer") { try Self.rows(socket, "solo") == ["one no check 1 127.0.0.31:\(app)"] }
            _ = try CLIClient.ask(socket, "set server solo/one fqdn two.test")
            try eventually(timeout: 10, "the new name") { try Self.rows(socket, "solo") == ["one no check 1 127.0.0.32:\(app)"] }
            try CLIClient.ask(socket, "show servers state").write(toFile: stateFile, atomically: true, encoding: .utf8)
        }
        try? FileManager.default.removeItem(atPath: socket)
        let second = try Hasp(config: config, waitFor: [front], arguments: ["-db"])
        defer { second.stop() }
        try eventually("the stats socket") { FileManager.default.fileExists(atPath: socket) }
        #expect(try Self.rows(socket, "solo") == ["one no check 1 127.0.0.32:\(app)"])
        #expect(try Self.body(front) == "32")
        let state = try CLIClient.ask(socket, "show servers state solo").split(separator: "\n").last?.split(separator: " ") ?? []
        #expect(state.count > 18 && state[17] == "two.test")
    }
}
