import Foundation
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// Configuration files as real installations write them: CRLF line endings, `master-worker` in
/// the file, a TCP frontend in front of an HTTP backend, `unix-bind`, `max-spread-checks`.
@Suite(.serialized) struct ConfigEdgeCaseTests {
    @Test func aFileWithCRLFLineEndingsServes() throws {
        let port = try Ports.free()
        let text = returnConfig(port: port, body: "crlf").replacingOccurrences(of: "\n", with: "\r\n") + "\r\n"
        let check = try TempDir()
        let path = try check.write("windows.cfg", text)
        let verdict = try run(HaspBinary.path, ["-c", "-f", path])
        #expect(verdict.status == 0, "\(verdict.stderr)")
        let hasp = try Hasp(config: text, waitFor: [port])
        defer { hasp.stop() }
        #expect(fetchOnce(port: port) == "crlf")
    }

    @Test func masterWorkerInTheGlobalSectionStartsAMaster() throws {
        let port = try Ports.free()
        let hasp = try Hasp(config: returnConfig(port: port, body: "mw", global: "    master-worker"), waitFor: [port])
        defer { hasp.stop() }
        try eventually("the first load") { hasp.child.stderr.contains("Loading success.") }
        let workers = children(of: hasp.pid)
        #expect(workers.count == 1)
        #expect(fetchOnce(port: port) == "mw")
        // It reloads like any master, and stays one when the reloaded file no longer says so.
        _ = try hasp.dir.write("hasp.cfg", returnConfig(port: port, body: "mw2"))
        hasp.child.signal(SIGUSR2)
        try eventually("the reload") { fetchOnce(port: port) == "mw2" }
        #expect(isAlive(hasp.pid))
        try eventually("the previous worker to exit") { children(of: hasp.pid).filter(isAlive).count == 1 }
    }

    /// `server x 0.0.0.0:<port>` (or `:<port>`, `*:<port>`) connects to the address the client
    /// connected to, as `set-dst` leaves it: haproxy's documented forwarding pattern.
    @Test func aServerAtTheAnyAddressForwardsToTheClientsDestination() throws {
        let backend = try TestBackend()
        defer { backend.stop() }
        let port = try Ports.free()
        let config = """
        defaults
            mode http
            timeout connect 2s
            timeout client 5s
            timeout server 5s
        frontend fe
            bind 127.0.0.1:\(port)
            http-request set-dst hdr(x-dst) if { req.hdr(x-dst) -m found }
            use_backend star if { req.hdr(x-star) -m found }
            default_backend any
        backend any
            server s1 0.0.0.0:\(backend.port)
        backend star
            server s1 *:\(backend.port)
        """
        let hasp = try Hasp(config: config, waitFor: [port])
        defer { hasp.stop() }
        func status(_ headers: [String]) throws -> String {
            try curl(["-s", "-o", "/dev/null", "-w", "%{http_code}"] + headers.flatMap { ["-H", $0] } + ["http://127.0.0.1:\(port)/hello"]).stdout
        }
        // The client connected to 127.0.0.1, where the backend listens.
        #expect(try status([]) == "200")
        #expect(try status(["x-star: 1"]) == "200")
        // Moved by set-dst to an address where nothing listens on that port: refused, 503.
        #expect(try status(["x-dst: 127.0.0.2"]) == "503")
        #expect(try status(["x-dst: 127.0.0.1"]) == "200")
        #expect(backend.requests.load(ordering: .relaxed) == 3)
    }

    @Test func aTCPFrontendInFrontOfAnHTTPBackendSpeaksHTTP() throws {
        let backend = try TestBackend()
        defer { backend.stop() }
        let port = try Ports.free()
        let config = """
        defaults
            timeout connect 2s
            timeout client 5s
            timeout server 5s
        frontend fe
            mode tcp
            bind 127.0.0.1:\(port)
            default_backend web
        backend web
            mode http
            server s1 127.0.0.1:\(backend.port)
        """
        let hasp = try Hasp(config: config, waitFor: [port])
        defer { hasp.stop() }
        // Parsed as HTTP: two requests on one connection, each answered, each counted.
        let client = try RawClient(port: port)
        try client.send("GET /hello HTTP/1.1\r\nHost: x\r\n\r\nGET /conn HTTP/1.1\r\nHost: x\r\n\r\n")
        let answers = try client.readResponses(2)
        #expect(answers[0].hasPrefix("HTTP/1.1 200 OK\r\n") && answers[0].hasSuffix("b1"))
        #expect(answers[1].hasPrefix("HTTP/1.1 200 OK\r\n"))
        #expect(backend.requests.load(ordering: .relaxed) == 2)
    }

    @Test func unixBindGivesItsPrefixAndModeToUnixListeners() throws {
        let port = try Ports.free()
        let hasp = try Hasp(config: """
        global
            unix-bind prefix @DIR@/ mode 640
        defaults
            mode http
            timeout connect 2s
            timeout client 5s
            timeout server 5s
        frontend fe
            bind 127.0.0.1:\(port)
            bind unix@fe.sock
            http-request return status 200 content-type text/plain string "unix"
        """, waitFor: [port])
        defer { hasp.stop() }
        let path = hasp.dir.path("fe.sock")
        var info = stat()
        try eventually("the socket file") { stat(path, &info) == 0 }
        #expect(info.st_mode & 0o777 == 0o640)
        let answer = try run("/usr/bin/curl", ["-sS", "--unix-socket", path, "http://x/"])
        #expect(answer.stdout == "unix")
    }

    @Test func maxSpreadChecksBoundsTheDelayOfTheFirstChecks() throws {
        let targets = try (0..<4).map { _ in try CheckTarget() }
        let port = try Ports.free()
        let servers = targets.enumerated().map { "    server s\($0.offset) 127.0.0.1:\($0.element.port) check inter 20s" }
        let hasp = try Hasp(config: """
        global
            max-spread-checks 200ms
        defaults
            mode http
            timeout connect 2s
            timeout client 5s
            timeout server 5s
        frontend fe
            bind 127.0.0.1:\(port)
            default_backend be
        backend be
            option httpchk
        \(servers.joined(separator: "\n"))
        """, waitFor: [port])
        defer { hasp.stop() }
        // Spread over `inter` (20 s), the last server's first check would wait 15 s.
        try eventually(timeout: 5, "every server's first check") { targets.allSatisfy { !$0.arrivals.isEmpty } }
    }
}
