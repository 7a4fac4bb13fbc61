import Foundation
import Testing

/// `resolvers` sections and `server-template` lines as Debian's haproxy reads them: the same
/// messages for bad lines, and the same servers, states and addresses at start.
@Suite(.serialized, .enabled(if: StickTableTests.haproxyAvailable, "needs Debian's haproxy"))
struct ResolversConfigTests {
    /// The alerts and warnings of `-c`, without process ids and with the file's path as CFG.
    static func messages(_ binary: String, _ text: String) throws -> [String] {
        let dir = try TempDir()
        let path = try dir.write("c.cfg", text)
        let result = try run(binary, ["-c", "-f", path])
        return result.stderr.split(separator: "\n").filter {
            ($0.contains("[ALERT]") || $0.contains("[WARNING]")) && !$0.contains("Fatal errors") && !$0.contains("Error(s) found")
                && !$0.contains("missing timeouts")
                // haproxy 2.6 follows some httpclient alerts with an empty one it prints as "(null)".
                && !$0.hasSuffix(": (null)")
        }.map { $0.components(separatedBy: "config : ").dropFirst().joined(separator: "config : ").replacingOccurrences(of: path, with: "CFG") }
    }

    @Test func badLinesGetHAProxysMessages() throws {
        let cases = [
            "resolvers r\n  nameserver\n", "resolvers r\n  nameserver d1\n", "resolvers r\n  nameserver d1 bad\n",
            "resolvers r\n  accepted_payload_size 70000\n", "resolvers r\n  accepted_payload_size\n", "resolvers r\n  resolve_retries\n",
            "resolvers r\n  timeout foo 1s\n", "resolvers r\n  timeout resolve\n", "resolvers r\n  timeout retry abc\n",
            "resolvers r\n  hold foo 1s\n", "resolvers r\n  hold valid\n", "resolvers r\n  hold valid abc\n", "resolvers r\n  frobnicate\n",
            "resolvers r\n  nameserver d1 127.0.0.1:53\n  nameserver d1 127.0.0.1:54\n", "resolvers r\n  resolution_pool_size 10\n",
            "resolvers r\n  resolve_retries 2\n",
            "resolvers r\n  nameserver d1 127.0.0.1:53\nbackend b\n  server x 127.0.0.1:80 resolvers nosuch\n",
            "backend b\n  server-template a\n", "backend b\n  server-template b 0 x:1\n", "backend b\n  server-template c 3-1 x:1\n",
            "backend b\n  server-template d x x:1\n", "global\n  httpclient.resolvers.id dns\n",
            "global\n  httpclient.resolvers.prefer foo\n", "frontend f\n  bind 127.0.0.1:1\n  server-template a 2 x:1\n",
            "resolvers r\n  nameserver d1 127.0.0.1:53\nbackend b\n  server x x.test:80 resolvers r resolve-opts allow-dup-ip,frob\n",
            "resolvers r\n  nameserver d1 127.0.0.1:53\nbackend b\n  server x x.test:80 resolvers r resolve-net 10.0.0.0/8,nonsense\n",
            "resolvers r\n  nameserver d1 127.0.0.1:53\nbackend b\n  server x x.test:80 resolvers r resolve-opts\n",
            // The implicit section of /etc/resolv.conf's servers is `default`: naming it is fine
            // (the warning is about the server's unresolved address).
            "backend b\n  server x x.test:80 resolvers default init-addr none\n  server y x.test:80 resolvers nosuch init-addr none\n",
            // `init-addr`: a name the system cannot resolve, and what follows it.
            "backend b\n  server x x.test:80\n  server y y.test:80\n", "backend b\n  server x x.test:80 init-addr libc,10.0.0.1\n",
            "backend b\n  server x x.test:80 resolvers default init-addr libc\n", "backend b\n  server x x.test:80 init-addr last,libc,none\n",
        ]
        for body in cases {
            let theirs = try Self.messages(StickTableTests.haproxy, body)
            let ours = try Self.messages(HaspBinary.path, body)
            #expect(!theirs.isEmpty, "\(body)")
            #expect(theirs == ours, "\(body)\nhaproxy: \(theirs)\nhasp:    \(ours)")
        }
    }

    /// Template slots and servers that wait for their resolvers: the same `show stat` rows.
    @Test func templatesAndUnresolvedServersStartAsInHAProxy() throws {
        func rows(_ binary: String, port: Int) throws -> [String] {
            let dir = try TempDir()
            let socket = dir.path("admin.sock")
            let text = """
                global
                    stats socket \(socket) level admin
                resolvers dns
                    nameserver ns1 127.0.0.1:1053
                    parse-resolv-conf
                    resolve_retries 3
                    timeout resolve 1s
                    timeout retry 1s
                    hold valid 10s
                    hold obsolete 30s
                    accepted_payload_size 8192
                defaults
                    mode http
                    timeout client 5s
                    timeout server 5s
                    timeout connect 5s
                frontend fe
                    bind 127.0.0.1:\(port)
                    default_backend be
                backend be
                    server-template web 3 nosuch.invalid:80 check resolvers dns init-addr none
                    server-template app 2-3 localhost:81
                    server-template srv 2 _http._tcp.nosuch.invalid resolvers dns init-addr none
                    server fixed 127.0.0.1:82 resolvers dns init-addr last,libc,none
                    server given nosuch.invalid:83 resolvers dns init-addr 127.0.0.9
                """
            let path = try dir.write("r.cfg", text)
            let child = try ChildProcess(binary, ["-db", "-f", path], dir: dir, name: "proxy")
            defer { child.stop() }
            // (The socket file exists from its bind, a moment before it listens: asked until it answers.)
            var answer = ""
            try eventually("\(binary) serving") {
                guard FileManager.default.fileExists(atPath: socket) && Ports.isAccepting(port) else { return false }
                answer = (try? CLIClient.ask(socket, "show stat")) ?? ""
                return !answer.isEmpty
            }
            let stat = answer.split(separator: "\n").map { $0.split(separator: ",", omittingEmptySubsequences: false) }
            let header = try #require(stat.first)
            let columns = ["# pxname", "svname", "status", "addr", "sid"].compactMap { name in header.firstIndex { $0 == name } }
            #expect(columns.count == 5)
            return stat.dropFirst().filter { $0.first == "be" }.map { row in columns.map { row.count > $0 ? String(row[$0]) : "" }.joined(separator: ",") }
        }
        let port = try Ports.free()
        let theirs = try rows(StickTableTests.haproxy, port: port)
        let ours = try rows(HaspBinary.path, port: port)
        #expect(theirs == ours, "\nhaproxy: \(theirs)\nhasp:    \(ours)")
        #expect(ours.contains("be,web1,MAINT (resolution),,1") && ours.contains("be,app3,no check,127.0.0.1:81,5"), "\(ours)")
    }
}

/// Global `default-path`: relative files of the configuration from its directory, its parent
/// or an origin, with haproxy 2.6's messages for bad modes.
@Suite(.serialized, .enabled(if: StickTableTests.haproxyAvailable, "needs Debian's haproxy"))
struct DefaultPathTests {
    @Test func relativeFilesStartWhereDefaultPathSays() throws {
        let dir = try TempDir()
        let conf = dir.path("conf")
        try FileManager.default.createDirectory(atPath: conf + "/errors", withIntermediateDirectories: true)
        try FileManager.default.createDirectory(atPath: dir.path("errors"), withIntermediateDirectories: true)
        let page = "HTTP/1.0 503 Service Unavailable\r\nContent-Type: text/plain\r\n\r\nbusy\n"
        try page.write(toFile: conf + "/errors/503.http", atomically: true, encoding: .utf8)
        try page.write(toFile: dir.path("errors/parent.http"), atomically: true, encoding: .utf8)
        func check(_ global: String, _ file: String) throws -> (Int32, [String], Int32, [String]) {
            let path = conf + "/t.cfg"
            try """
                global
                \(global)
                defaults
                    mode http
                    timeout client 1s
                    timeout server 1s
                    timeout connect 1s
                listen b
                    bind 127.0.0.1:8
                    errorfile 503 \(file)
                    server s 127.0.0.1:9
                """.appending("\n").write(toFile: path, atomically: true, encoding: .utf8)
            let theirs = try run(StickTableTests.haproxy, ["-c", "-f", path])
            let ours = try run(HaspBinary.path, ["-c", "-f", path])
            func alerts(_ text: String) -> [String] {
                text.split(separator: "\n").filter { $0.contains("[ALERT]") }.map { $0.components(separatedBy: " : ").dropFirst().joined(separator: " : ") }
            }
            return (theirs.status, alerts(theirs.stderr), ours.status, alerts(ours.stderr))
        }
        let cases: [(String, String, Bool)] = [
            ("    default-path config", "errors/503.http", true),
            ("    default-path parent", "errors/parent.http", true),
            ("    default-path origin \(conf)", "errors/503.http", true),
            // From the directory the process started in (the test's), the file is not there.
            ("    default-path current", "errors/503.http", false),
            ("", "errors/503.http", false),
            ("    default-path", "errors/503.http", false),
            ("    default-path elsewhere", "errors/503.http", false),
            ("    default-path origin", "errors/503.http", false),
            ("    default-path origin \(dir.path("nosuch"))", "errors/503.http", false),
        ]
        for (global, file, accepted) in cases {
            let (theirStatus, theirAlerts, ourStatus, ourAlerts) = try check(global, file)
            #expect((theirStatus == 0) == accepted, "haproxy: \(global): \(theirAlerts)")
            #expect(ourStatus == theirStatus, "\(global)")
            #expect(ourAlerts == theirAlerts, "\(global)\nhaproxy: \(theirAlerts)\nhasp:    \(ourAlerts)")
        }
    }
}
