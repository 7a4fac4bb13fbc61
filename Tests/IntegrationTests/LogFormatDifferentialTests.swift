import Foundation
import Testing

/// `log-format` and the formats of `option httplog [clf]`, `option httpslog`, `option tcplog`,
/// captures, unique IDs and `option dontlog-normal`: the same configuration and requests through
/// Debian's haproxy and hasp, the lines compared once dates, ports, timers and byte counts are
/// masked (they differ from run to run, and HAProxy counts bytes in its internal form).
@Suite(.serialized) struct LogFormatDifferentialTests {
    static func config(_ ports: [Int], app: Int) -> String {
        """
        global
            log stdout format raw local0
        defaults
            mode http
            log global
            timeout client 2s
            timeout server 2s
            timeout connect 1s
        frontend custom
            bind 127.0.0.1:\(ports[0])
            capture request header Host len 20
            capture request header User-Agent len 5
            capture response header Content-Type len 30
            declare capture request len 8
            http-request capture req.hdr(x-id) id 2
            unique-id-format "%{+X}o%ci:%cp_%fi:%fp_%rt:%pid"
            unique-id-header X-Unique-ID
            http-response set-header X-Seen 1
            log-format "a  b %[src]  c %[var(txn.nope)]  d %{+Q}[fe_name] m=%[method] e %hr %hs %hrl %hsl f %{+Q}r g %ci %{+Q}ci %ST %tsc %ts %HM %HU %HP %HQ %HV %{+Q}ID %b %s %rc %{+Q}CC %CS %sq/%bq %sslv %{+E}HQ %{+Q,+E}HU %{+X}ST end"
            default_backend app
        frontend clf
            bind 127.0.0.1:\(ports[1])
            option httplog clf
            capture request header Host len 20
            default_backend app
        frontend https
            bind 127.0.0.1:\(ports[2])
            option httpslog
            default_backend app
        frontend tcp
            bind 127.0.0.1:\(ports[3])
            mode tcp
            option tcplog
            default_backend tapp
        frontend quiet
            bind 127.0.0.1:\(ports[4])
            option httplog
            option dontlog-normal
            default_backend app
        frontend bare
            bind 127.0.0.1:\(ports[5])
            log-format "bare st=%[status] m=%[method] %ST %{+Q}r"
            default_backend app
        backend app
            server s1 127.0.0.1:\(app)
        backend tapp
            mode tcp
            server t1 127.0.0.1:\(app)

        """
    }

    /// What varies between two runs, masked.
    static let masks: [(String, String)] = [
        (#"\d{2}/[A-Z][a-z]{2}/\d{4}:[\d:.]+( [+-]\d{4})?"#, "DATE"),
        (#"127\.0\.0\.1:\d+"#, "ADDR"),
        (#"[0-9A-F]{8}:[0-9A-F]{4}_[0-9A-F]{8}:[0-9A-F]{4}_[0-9A-F]+:[0-9A-F]+"#, "UID"),
        // httplog / httpslog timers and bytes, tcplog timers and bytes.
        (#" -?\d+/-?\d+/-?\d+/-?\d+/-?\d+ (\d{3}) \d+ "#, " T $1 B "),
        // (The TCP session's end: HAProxy waits for the client's own close, Hasp closes when
        // the server did; the line's format is what is compared here. `%bc/%sc` too: the
        // readiness probes' own TCP sessions may still hold the server when a loaded machine
        // logs the request.)
        (#" -?\d+/-?\d+/-?\d+ \d+ (--|cD) \d+/\d+/\d+/\d+/"#, " T B -- N/N/N/N/"),
        // clf: bytes, client port, accept milliseconds, timers.
        (#" (\d{3}) \d+ "" "" \d+ \d+ "#, " $1 B \"\" \"\" P MS "),
        // (`%bc %sc` as for tcplog: haproxy has been seen counting a stream still on the
        // backend when a loaded machine logs the request; Hasp never counts the one it logs.)
        (#" -?\d+ -?\d+ -?\d+ -?\d+ -?\d+ ---- \d+ (\d+) \d+ \d+ "#, " T ---- AC $1 BC SC "),
        // `%ac` counts the process's connections, the other tests' too; `%fc` the frontend's,
        // where haproxy has been seen still counting a readiness probe's connection, and
        // `%bc/%sc` (as above) the previous request's stream on a loaded machine.
        (#" ---- \d+/\d+/\d+/\d+/"#, " ---- AC/FC/BC/SC/"),
    ]

    static func lines(_ binary: String, app: TestBackend) throws -> [String] {
        var ports: [Int] = []
        while ports.count < 6 {
            let p = try Ports.free()
            if !ports.contains(p) { ports.append(p) }
        }
        let dir = try TempDir()
        let path = try dir.write("proxy.cfg", config(ports, app: app.port))
        let child = try ChildProcess(binary, ["-db", "-f", path], dir: dir, name: "proxy")
        defer { child.stop() }
        for p in ports { try eventually("\(binary) on \(p)") { Ports.isAccepting(p) } }
        func get(_ port: Int, _ path: String, _ headers: String = "") throws {
            _ = try exchange(port, "GET \(path) HTTP/1.1\r\nHost: 127.0.0.1:\(port)\r\n\(headers)Connection: close\r\n\r\n")
        }
        try get(ports[0], "/hello?q=1&x=a]b", "User-Agent: agent/1.0\r\nX-Id: abc\r\n")
        try get(ports[0], "/status/404")
        try get(ports[1], "/hello")
        try get(ports[2], "/hello")
        try get(ports[3], "/hello")
        try get(ports[4], "/hello")
        try get(ports[4], "/status/503")
        try get(ports[5], "/status/404")
        // HAProxy also logs the readiness probes (connections closed before a request) as
        // `<BADREQ>` 400 lines; Hasp logs no line for a connection that sent nothing.
        // A probe of the TCP frontend is a TCP session of its own, logged by both with no byte
        // sent back. How it ends depends on a race: the client's close came before the server
        // connection (`-1` connect time and `CC`, haproxy only) or after (`--`); neither line is
        // compared.
        func traffic() -> [Substring] {
            child.stdout.split(separator: "\n").filter {
                !$0.hasPrefix("[") && !$0.contains("<BADREQ>")
                    && $0.range(of: #" tcp tapp/t1 -?\d+/-?\d+/-?\d+ 0 "#, options: .regularExpression) == nil
            }
        }
        do {
            try eventually("\(binary): 7 lines") { traffic().count >= 7 }
        } catch {
            throw HarnessError("\(error); its output:\n\(child.stdout)")
        }
        return traffic().map { line in
            var text = String(line)
            for (pattern, replacement) in masks {
                text = text.replacingOccurrences(of: pattern, with: replacement, options: .regularExpression)
            }
            return text
        }
    }

    @Test(.enabled(if: StatsDifferentialTests.available, "needs Debian's haproxy"))
    func linesMatchHAProxy() throws {
        let app = try TestBackend(name: "app")
        defer { app.stop() }
        let theirs = try Self.lines(RulesDifferentialTests.haproxy, app: app)
        let ours = try Self.lines(HaspBinary.path, app: app)
        #expect(theirs.count == 7, "\(theirs)")
        #expect(theirs.contains { $0.contains(" tcp tapp/t1 T B -- ") })
        #expect(theirs.contains { $0.hasPrefix("a b 127.0.0.1 c - d \"custom\" m=GET e {ADDR|agent|abc}") })
        // `status` and `method` are read at log time whether or not rules kept the heads.
        #expect(theirs.contains { $0.hasPrefix("bare st=404 m=GET 404 \"GET /status/404 HTTP/1.1\"") })
        #expect(ours.count == theirs.count)
        // Lines come in the order exchanges end, which differs between runs.
        for (a, b) in zip(theirs.sorted(), ours.sorted()) { #expect(a == b, "\nhaproxy: \(a)\nhasp:    \(b)") }
    }
}

extension LogFormatDifferentialTests {
    /// RFC 5424 lines with `log-format-sd`, RFC 3164 lines cut by `len`, a proxy's `log-tag`,
    /// `log-send-hostname`, and `unique-id-format` seen by rules, the server and the log.
    @Test(.enabled(if: StatsDifferentialTests.available, "needs Debian's haproxy"))
    func syslogDetailsMatchHAProxy() throws {
        let app = try TestBackend(name: "app")
        defer { app.stop() }
        func run(_ binary: String) throws -> (stdout: [String], stderr: [String], answer: String, echoed: String) {
            let port = try Ports.free()
            let dir = try TempDir()
            let path = try dir.write("proxy.cfg", """
                global
                    log stdout format rfc5424 local0
                    log stderr len 100 format rfc3164 local0
                    log-send-hostname edgehost
                defaults
                    mode http
                    log global
                    timeout client 2s
                    timeout server 2s
                    timeout connect 1s
                frontend f
                    bind 127.0.0.1:\(port)
                    log-tag edge
                    unique-id-format "id-%rt"
                    unique-id-header X-Req-ID
                    log-format "%ID %{+Q}r %[unique-id] padding-padding-padding-padding-padding-padding-padding-padding-end"
                    log-format-sd "[meta@1 id=\\"%ID\\" st=\\"%ST\\"]"
                    http-request return status 200 content-type text/plain lf-string "%[unique-id]" if { path /id }
                    default_backend app
                backend app
                    server s1 127.0.0.1:\(app.port)

                """)
            let child = try ChildProcess(binary, ["-db", "-f", path], dir: dir, name: "proxy")
            defer { child.stop() }
            try eventually("\(binary) on \(port)") { Ports.isAccepting(port) }
            // (The readiness probe above opened a stream: HAProxy logs it as a `<BADREQ>`, Hasp
            // does not log a connection that sent nothing. Stream numbers are masked: HAProxy
            // also spends one on its side of such a probe.)
            let answer = StatsPageTests.body(try exchange(port, "GET /id HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n"))
            let echoed = try exchange(port, "GET /echo/x HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n")
                .split(whereSeparator: \.isNewline).first { $0.lowercased().hasPrefix("x-req-id:") }.map(String.init) ?? "-"
            func lines(_ text: String) -> [String] {
                text.split(separator: "\n").filter { $0.hasPrefix("<") && !$0.contains("<BADREQ>") }.map {
                    $0.replacingOccurrences(of: #"\d{4}-\d{2}-\d{2}T[\d:.]+[+-]\d{2}:\d{2}|[A-Z][a-z]{2} [ \d]\d [\d:]{8}|\[\d+\]| \d+ - "#,
                                            with: "X", options: .regularExpression)
                        .replacingOccurrences(of: #"id-\d+"#, with: "id-N", options: .regularExpression)
                }
            }
            try eventually("\(binary): the lines") { lines(child.stdout).count >= 2 && lines(child.stderr).count >= 2 }
            let mask = { (text: String) in text.replacingOccurrences(of: #"id-\d+"#, with: "id-N", options: .regularExpression) }
            // The ID the rule saw is the one the log line carries.
            #expect(child.stdout.contains(" \(answer) \"GET /id HTTP/1.1\" \(answer) "), "\(binary): \(answer)")
            return (lines(child.stdout), lines(child.stderr), mask(answer), mask(echoed.lowercased()))
        }
        let theirs = try run(RulesDifferentialTests.haproxy), ours = try run(HaspBinary.path)
        #expect(theirs.stdout.first?.contains("[meta@1 id=\"id-N\" st=\"200\"]") == true, "\(theirs.stdout)")
        #expect(theirs.stderr.allSatisfy { $0.utf8.count < 100 }, "\(theirs.stderr)")
        // Compared as sets of lines: the first request's line may come second (haproxy writes a
        // line when its stream ends, and the answered one can end after the forwarded one).
        #expect(ours.stdout.sorted() == theirs.stdout.sorted())
        #expect(ours.stderr.sorted() == theirs.stderr.sorted())
        #expect(ours.answer == theirs.answer && theirs.answer == "id-N")
        #expect(ours.echoed == theirs.echoed && theirs.echoed == "x-req-id: id-N")
    }
}

extension LogFormatDifferentialTests {
    /// Connections that end before a request is whole: a probe that sends nothing (logged
    /// unless `option dontlognull`), a head cut halfway (always logged), a request that never
    /// comes (`timeout http-request`). The lines, and where they go: a `ring` section read
    /// with `show events`.
    @Test(.enabled(if: StatsDifferentialTests.available, "needs Debian's haproxy"))
    func abandonedRequestsAndRingsMatchHAProxy() throws {
        func run(_ binary: String) throws -> (lines: [String], sinks: String, missing: String) {
            let plain = try Ports.free(), quiet = try Ports.free()
            let dir = try TempDir()
            let socket = dir.path("admin.sock")
            let path = try dir.write("proxy.cfg", """
                global
                    stats socket \(socket) level admin
                ring traffic
                    description "Traffic lines"
                    format raw
                    maxlen 300
                    size 65536
                defaults
                    mode http
                    log ring@traffic local0
                    option httplog
                    timeout client 2s
                    timeout server 2s
                    timeout connect 1s
                    timeout http-request 300ms
                frontend plain
                    bind 127.0.0.1:\(plain)
                    http-request return status 200 content-type text/plain string ok
                frontend quiet
                    bind 127.0.0.1:\(quiet)
                    option dontlognull
                    http-request return status 200 content-type text/plain string ok

                """)
            let child = try ChildProcess(binary, ["-db", "-f", path], dir: dir, name: "proxy")
            defer { child.stop() }
            try eventually("\(binary): the stats socket") { (try? CLIClient.ask(socket, "show info")) != nil }
            for port in [plain, quiet] {
                try eventually("\(binary) on \(port)") { Ports.isAccepting(port) }   // a probe: sends nothing
                let cut = try RawClient(port: port)
                try cut.send("GET / HT")
                cut.shutdownWrite()
                _ = cut.readToEnd()
                _ = try exchange(port, "GET /fine HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n")
                let idle = try RawClient(port: port)
                _ = idle.readToEnd()   // the 408 after `timeout http-request`
            }
            func lines() throws -> [String] {
                try CLIClient.ask(socket, "show events traffic").split(separator: "\n").map {
                    $0.replacingOccurrences(of: #"127\.0\.0\.1:\d+ \[[^\]]+\]"#, with: "CLIENT [DATE]", options: .regularExpression)
                        .replacingOccurrences(of: #" -?\d+/-?\d+/-?\d+/-?\d+/-?\d+ (\d{3}) \d+ "#, with: " T $1 B ", options: .regularExpression)
                        .replacingOccurrences(of: #" \d+/\d+/\d+/\d+/\d+ "#, with: " N/N/N/N/N ", options: .regularExpression)
                }
            }
            try eventually("\(binary): the lines") { try lines().count >= 6 }
            let sinks = try CLIClient.ask(socket, "show events")
            let missing = try CLIClient.ask(socket, "show events nope")
            return (try lines().sorted(), sinks, missing)
        }
        let theirs = try run(RulesDifferentialTests.haproxy), ours = try run(HaspBinary.path)
        // plain: the probe, the cut head, the request, the 408; quiet: the cut head, the request.
        #expect(theirs.lines.count == 6, "\(theirs.lines)")
        #expect(ours.lines == theirs.lines, "\nhaproxy:\n\(theirs.lines.joined(separator: "\n"))\nhasp:\n\(ours.lines.joined(separator: "\n"))")
        #expect(theirs.sinks.contains("    traffic    : type=buffer, 0 dropped, Traffic lines\n"))
        #expect(ours.sinks == theirs.sinks)
        #expect(ours.missing == theirs.missing && theirs.missing == "No such event sink\n")
    }
}
