import Foundation
import Testing

/// What `-c` says of rules declared in an order they do not run in, of rules after a final
/// unconditional one, of ACLs that cannot work where a rule runs, and of log formats that read
/// what is gone at log time: the same lines from Debian's haproxy and from hasp.
@Suite struct RuleWarningDifferentialTests {
    static let available = FileManager.default.fileExists(atPath: RulesDifferentialTests.haproxy)

    /// The warning and alert lines, from "parsing [" on (the pid and the level's padding differ).
    static func diagnostics(_ binary: String, _ path: String) throws -> (status: Int32, lines: [String]) {
        let r = try run(binary, ["-c", "-f", path])
        let lines = r.stderr.split(separator: "\n").compactMap { line -> String? in
            guard !line.contains("[NOTICE]"), let start = line.range(of: "config : ") else { return nil }
            return (line.contains("[ALERT]") ? "ALERT " : "WARNING ") + line[start.upperBound...]
        }
        return (r.status, lines)
    }

    static let orderAndPlaces = """
        defaults
            mode http
            timeout client 5s
            timeout server 5s
            timeout connect 5s
        listen li
            bind 127.0.0.1:1
            acl p path /
            acl mixed path /
            acl mixed status 200
            http-response set-header X 1 if p
            http-response set-header X 1 if mixed
            http-request set-header X 1 if { status 200 }
            http-after-response set-header X 1 if { hdr_beg(x-a) a }
            tcp-response content accept if { path / }
            tcp-request content accept if { status 200 }
            use-server s if { status 200 }
            stick-table type string size 1k
            stick on str(a) if { status 200 }
            stick store-response str(a) if { cook(a) -m found }
            stick store-request str(a) if { status 200 }
            monitor fail if { status 200 }
            redirect location /x if { status 200 }
            server s 127.0.0.1:1
        frontend fe
            bind 127.0.0.1:2
            use_backend be if { path /x }
            http-request deny
            http-request set-header a b
            http-request deny if { path /y }
            http-response deny
            http-response set-header a b if { hdr(x-a) -m found } { cookie(a) -m found }
            http-after-response allow
            http-after-response set-header a b
            redirect location /z if { path /z }
            monitor fail if { path /m }
            tcp-request content accept
            tcp-request session accept if { path / }
            tcp-request connection accept if { url_beg / }
            http-request return status 200
            http-request auth
            default_backend be
        backend be
            use-server s if { path /s }
            redirect location /r
            http-request set-header a b
            http-response set-header a %[hdr(x-a)] if { shdr(x-b) -m found } { scook(c) -m found }
            tcp-request content accept if { status 200 }
            tcp-response content accept if { path / }
            server s 127.0.0.1:1

        """

    @Test(.enabled(if: RuleWarningDifferentialTests.available, "needs Debian's haproxy"))
    func warningsMatchHAProxy() throws {
        let dir = try TempDir()
        let path = try dir.write("rules.cfg", Self.orderAndPlaces)
        let theirs = try Self.diagnostics(RulesDifferentialTests.haproxy, path)
        let ours = try Self.diagnostics(HaspBinary.path, path)
        // The file draws warnings of every kind checked here, and no alert.
        #expect(theirs.status == 0 && theirs.lines.count > 20, "\(theirs.lines)")
        #expect(theirs.lines.contains { $0.contains("will still be processed before") }
                && theirs.lines.contains { $0.contains("further entries are NOOP") }
                && theirs.lines.contains { $0.contains("involves keywords 'path'") })
        #expect(ours.status == theirs.status)
        #expect(ours.lines == theirs.lines, "\nhaproxy: \(theirs.lines.joined(separator: "\n"))\nhasp:    \(ours.lines.joined(separator: "\n"))")
    }

    /// Refused with the same alert: `tcp-response` where there is no backend, a request header
    /// in a log format.
    @Test(.enabled(if: RuleWarningDifferentialTests.available, "needs Debian's haproxy"),
          arguments: ["    tcp-response content accept", "    log-format \"%[src] %[req.hdr(host),lower] end\""])
    func refusalsMatchHAProxy(_ line: String) throws {
        let dir = try TempDir()
        let path = try dir.write("bad.cfg", """
            defaults
                mode http
                timeout client 5s
                timeout server 5s
                timeout connect 5s
            frontend fe
                bind 127.0.0.1:1
            \(line)
                default_backend be
            backend be
                server s 127.0.0.1:1

            """)
        let theirs = try Self.diagnostics(RulesDifferentialTests.haproxy, path)
        let ours = try Self.diagnostics(HaspBinary.path, path)
        #expect(theirs.status == 1 && theirs.lines.first?.hasPrefix("ALERT") == true, "\(theirs.lines)")
        #expect(ours.status == theirs.status)
        #expect(ours.lines.first == theirs.lines.first)
    }
}
