import Foundation
import Testing

#if canImport(Glibc)
import Glibc
#endif

@Suite(.serialized) struct LoggingTests {
    func matches(_ text: String, _ pattern: String) -> Bool {
        text.range(of: pattern, options: .regularExpression) != nil
    }

    @Test func trafficLinesCarryHAProxysFieldsAndTerminationFlags() throws {
        let syslog = try SyslogReceiver()
        let backend = try TestBackend(name: "b1")
        defer { syslog.stop(); backend.stop() }
        let port = try Ports.free()
        let tcpPort = try Ports.free()
        let hasp = try Hasp(config: """
            global
                nbthread 1
                log 127.0.0.1:\(syslog.port) local0
                stats socket @DIR@/admin.sock level admin
            defaults
                mode http
                log global
                option httplog
                option log-separate-errors
                timeout connect 2s
                timeout client 10s
                timeout server 10s
            frontend fe
                bind 127.0.0.1:\(port)
                default_backend be
            backend be
                server s1 127.0.0.1:\(backend.port)
            listen relay
                mode tcp
                option tcplog
                option dontlognull
                bind 127.0.0.1:\(tcpPort)
                server t1 127.0.0.1:\(backend.port)
            """, waitFor: [port, tcpPort])
        defer { hasp.stop() }
        let admin = hasp.dir.path("admin.sock")
        try eventually("the stats socket") { FileManager.default.fileExists(atPath: admin) }
        func line(containing text: String) -> String? { syslog.received.first { $0.contains(text) } }

        // A normal exchange: RFC 3164 header, then HAProxy's httplog fields.
        #expect(try curl(["http://127.0.0.1:\(port)/hello"]).stdout == "b1")
        try eventually("the /hello line") { line(containing: "GET /hello") != nil }
        let hello = try #require(line(containing: "GET /hello"))
        let header = #"^<134>[A-Z][a-z]{2} [ 0-9]\d \d\d:\d\d:\d\d hasp\[\#(hasp.pid)\]: "#
        let fields = #"127\.0\.0\.1:\d+ \[\d\d/[A-Z][a-z]{2}/\d{4}:\d\d:\d\d:\d\d\.\d{3}\] fe be/s1 \d+/0/\d+/\d+/\d+ 200 \d+ - - ---- \d+/1/0/0/0 0/0 "GET /hello HTTP/1\.1"\n$"#
        #expect(matches(hello, header + fields), "\(hello)")

        // shutdown sessions server: the stream waiting for its response is logged with K.
        let held = try RawClient(port: port, timeout: 8)
        try held.send("GET /hold HTTP/1.1\r\nHost: x\r\n\r\n")
        try eventually("the request on s1") { backend.requests.load(ordering: .relaxed) >= 2 }
        #expect(try CLIClient.ask(admin, "shutdown sessions server be/s1") == "\n")
        try eventually("the killed line") { line(containing: "GET /hold") != nil }
        #expect(matches(line(containing: "GET /hold")!, #" fe be/s1 \d+/0/\d+/-1/\d+ -1 0 - - KH-- "#), "\(line(containing: "GET /hold")!)")
        #expect(held.isClosedByPeer())

        // The same in tcp mode: a relayed connection killed during data.
        let relayed = try RawClient(port: tcpPort, timeout: 8)
        try relayed.send("GET /hold HTTP/1.1\r\nHost: x\r\n\r\n")
        try eventually("the relayed request") { backend.requests.load(ordering: .relaxed) >= 3 }
        #expect(try CLIClient.ask(admin, "shutdown sessions server relay/t1") == "\n")
        try eventually("the tcplog line") { line(containing: " KD ") != nil }
        // (`%fc/%bc/%sc` are not pinned: on a loaded machine the readiness probe's own session
        // may still be open, and hold the server, when this line is written.)
        #expect(matches(line(containing: " KD ")!, #"\] relay relay/t1 0/\d+/\d+ 0 KD \d+/\d+/\d+/\d+/0 0/0\n$"#), "\(line(containing: " KD ")!)")
        // The harness's readiness probe opened an empty session: dontlognull leaves it out.
        #expect(!syslog.received.contains { $0.contains(" relay relay/t1 ") && $0.contains(" -- ") })

        // No server: 503 with SC, and the maintenance event reaches the log at notice.
        #expect(try CLIClient.ask(admin, "disable server be/s1") == "\n")
        _ = try curl(["http://127.0.0.1:\(port)/after"])
        try eventually("the 503 line") { line(containing: "GET /after") != nil }
        #expect(matches(line(containing: "GET /after")!, #" fe be/<NOSRV> \d+/-1/-1/-1/\d+ 503 \d+ - - SC-- "#), "\(line(containing: "GET /after")!)")
        // option log-separate-errors: the failed exchange goes out at err, the good one at info.
        #expect(line(containing: "GET /after")!.hasPrefix("<131>"))
        let maint = try #require(line(containing: "Server be/s1 is going DOWN for maintenance"))
        #expect(maint.hasPrefix("<129>"), "a running server going into maintenance is an alert, as in HAProxy")
        try eventually("the backend alert") { line(containing: "backend be has no server available!") != nil }
        #expect(line(containing: "backend be has no server available!")!.hasPrefix("<128>"))
    }

    @Test func connectLineWithoutALogOptionAndStdoutTargets() throws {
        let backend = try TestBackend(name: "b1")
        defer { backend.stop() }
        let port = try Ports.free()
        let hasp = try Hasp(config: """
            global
                log stdout format raw local0 info
            defaults
                mode http
                log global
                timeout connect 2s
                timeout client 10s
                timeout server 10s
            frontend fe
                bind 127.0.0.1:\(port)
                default_backend be
            backend be
                server s1 127.0.0.1:\(backend.port)
            """, waitFor: [port])
        defer { hasp.stop() }
        #expect(try curl(["http://127.0.0.1:\(port)/hello"]).stdout == "b1")
        try eventually("the connect line") { hasp.child.stdout.contains("Connect from 127.0.0.1:") }
        let text = hasp.child.stdout
        #expect(matches(text, #"(?m)^Connect from 127\.0\.0\.1:\d+ to 127\.0\.0\.1:\#(port) \(fe/HTTP\)$"#), "\(text)")
    }

    /// Debian's `halog` (from the haproxy package) reads Hasp's httplog lines without a parsing
    /// error and finds the right servers and statuses in them.
    @Test func halogParsesTheLines() throws {
        let backend = try TestBackend(name: "b1")
        defer { backend.stop() }
        let port = try Ports.free()
        let hasp = try Hasp(config: """
            global
                log stdout format raw local0
            defaults
                mode http
                log global
                option httplog
                # the readiness probe would be logged as a <BADREQ> otherwise, as in HAProxy
                option dontlognull
                timeout connect 2s
                timeout client 10s
                timeout server 10s
            frontend fe
                bind 127.0.0.1:\(port)
                default_backend be
            backend be
                server s1 127.0.0.1:\(backend.port)
            """, waitFor: [port])
        defer { hasp.stop() }
        for _ in 0..<3 { _ = try curl(["http://127.0.0.1:\(port)/hello"]) }
        for _ in 0..<2 { _ = try curl(["http://127.0.0.1:\(port)/status/503"]) }
        try eventually("five lines") { hasp.child.stdout.split(separator: "\n").count >= 5 }
        // As a syslog daemon writes them to /var/log/haproxy.log.
        let file = try hasp.dir.write("haproxy.log", hasp.child.stdout.split(separator: "\n")
            .map { "Nov 25 17:00:00 host hasp[1]: \($0)\n" }.joined())
        let halog = FileManager.default.fileExists(atPath: "/usr/bin/halog") ? "/usr/bin/halog" : "/usr/sbin/halog"
        let statuses = try run("/bin/sh", ["-c", "\(halog) -st < \(file)"])
        #expect(statuses.stdout.contains("200 3") && statuses.stdout.contains("503 2"), "\(statuses.stdout)")
        #expect(statuses.stderr.contains("5 lines in, 2 lines out, 0 parsing errors"), "\(statuses.stderr)")
        let servers = try run("/bin/sh", ["-c", "\(halog) -srv < \(file)"])
        #expect(servers.stdout.contains("be/s1 0 3 0 0 2 0 5 "), "\(servers.stdout)")
    }
}

