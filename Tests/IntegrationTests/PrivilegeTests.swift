import Foundation
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// `user`/`group`, `chroot` and `setcap` on the real binary: what a worker keeps after it leaves
/// root (read from /proc), transparent proxying with `usesrc clientip`, and logging to
/// `/dev/log` from inside the chroot. These need root, as the package's master has.
@Suite(.serialized, .enabled(if: getuid() == 0, "needs root to change user"))
struct PrivilegeTests {
    static let nobody: uid_t = getpwnam("nobody")!.pointee.pw_uid

    /// The capability sets of every thread of a process: [thread: [field: bits]].
    static func capabilities(of pid: Int32) -> [[String: UInt64]] {
        let tasks = (try? FileManager.default.contentsOfDirectory(atPath: "/proc/\(pid)/task")) ?? []
        // A thread that ends between the listing and the read (a short-lived helper thread) has
        // no status left to check: it is skipped, not reported as a thread without a user.
        return tasks.compactMap { task in
            guard let status = try? String(contentsOfFile: "/proc/\(pid)/task/\(task)/status", encoding: .utf8) else { return nil }
            var fields: [String: UInt64] = [:]
            for line in status.split(separator: "\n") {
                let parts = line.split(separator: ":", maxSplits: 1)
                guard parts.count == 2, parts[0].hasPrefix("Cap") || parts[0] == "Uid" else { continue }
                let value = parts[1].trimmingCharacters(in: .whitespaces)
                fields[String(parts[0])] = parts[0] == "Uid" ? UInt64(value.split(separator: "\t")[0]) : UInt64(value, radix: 16)
            }
            return fields
        }
    }

    /// The serving worker: the master binds before it starts one, so a first answer tells
    /// that the worker is past its start-up (and its privilege drop).
    static func worker(of hasp: Hasp, port: Int) throws -> Int32 {
        #expect(try curl(["http://127.0.0.1:\(port)/hello"]).stdout == "b1")
        var found: Int32?
        try eventually("a worker") {
            found = children(of: hasp.pid).first
            return found != nil
        }
        return found!
    }

    static func config(global: String, port: Int, backend: String, defaults: String = "") -> String {
        """
        global
        \(global)
        defaults
        \(defaults)
            mode http
            timeout client 5s
            timeout server 5s
            timeout connect 5s
        \(backend)
        frontend f
            bind 127.0.0.1:\(port)
            default_backend b
        """
    }

    @Test func setcapKeepsExactlyTheNamedCapabilitiesOnEveryThread() throws {
        let backend = try TestBackend()
        defer { backend.stop() }
        let port = try Ports.free()
        let hasp = try Hasp(config: Self.config(
            global: "    user nobody\n    group nogroup\n    setcap cap_net_admin,cap_net_bind_service",
            port: port, backend: "backend b\n    server s1 127.0.0.1:\(backend.port)"), waitFor: [port], arguments: ["-W"])
        defer { hasp.stop() }
        let worker = try Self.worker(of: hasp, port: port)
        // cap_net_bind_service is bit 10, cap_net_admin bit 12.
        let expected: UInt64 = (1 << 10) | (1 << 12)
        let threads = Self.capabilities(of: worker)
        #expect(threads.count > 1)
        for thread in threads {
            #expect(thread["Uid"] == UInt64(Self.nobody))
            #expect(thread["CapEff"] == expected)
            #expect(thread["CapPrm"] == expected)
            #expect(thread["CapInh"] == 0)
            #expect(thread["CapAmb"] == 0)
        }
        // The master stays root with its full set: it binds again on reload.
        #expect(Self.capabilities(of: hasp.pid).first?["Uid"] == 0)
        #expect(try curl(["http://127.0.0.1:\(port)/hello"]).stdout == "b1")
    }

    @Test func aWorkerThatChangesUserWithoutSetcapKeepsNoCapability() throws {
        let backend = try TestBackend()
        defer { backend.stop() }
        let port = try Ports.free()
        let hasp = try Hasp(config: Self.config(global: "    user nobody\n    group nogroup", port: port,
                                                backend: "backend b\n    server s1 127.0.0.1:\(backend.port)"),
                            waitFor: [port], arguments: ["-W"])
        defer { hasp.stop() }
        let worker = try Self.worker(of: hasp, port: port)
        for thread in Self.capabilities(of: worker) {
            #expect(thread["Uid"] == UInt64(Self.nobody))
            #expect(thread["CapEff"] == 0)
            #expect(thread["CapPrm"] == 0)
        }
        #expect(try curl(["http://127.0.0.1:\(port)/hello"]).stdout == "b1")
    }

    /// `usesrc clientip` needs IP_TRANSPARENT: with `setcap cap_net_admin` an unprivileged worker
    /// connects from the client's address; `source <addr>` alone picks a local address.
    @Test func usesrcClientIPConnectsFromTheClientsAddress() throws {
        let backend = try TestBackend()
        defer { backend.stop() }
        let port = try Ports.free()
        let plain = try Ports.free()
        let config = Self.config(
            global: "    user nobody\n    group nogroup\n    setcap cap_net_admin",
            port: port,
            backend: """
            backend b
                source 0.0.0.0 usesrc clientip
                http-reuse always
                server s1 127.0.0.1:\(backend.port)
            backend fixed
                server s1 127.0.0.1:\(backend.port) source 127.0.0.3
            frontend f2
                bind 127.0.0.1:\(plain)
                default_backend fixed
            """)
        let hasp = try Hasp(config: config, waitFor: [port, plain], arguments: ["-W"])
        defer { hasp.stop() }
        let seen = try curl(["--interface", "127.0.0.2", "http://127.0.0.1:\(port)/peer"])
        #expect(seen.stdout == "127.0.0.2", "\(seen)")
        // Even with `http-reuse always`, the idle connection made from 127.0.0.2 is not lent to
        // another client (HAProxy's private connections).
        let other = try curl(["--interface", "127.0.0.3", "http://127.0.0.1:\(port)/peer"])
        #expect(other.stdout == "127.0.0.3", "\(other)")
        #expect(try curl(["http://127.0.0.1:\(plain)/peer"]).stdout == "127.0.0.3")
    }

    /// Health checks leave from the `source` address too (the plain one: `usesrc` is for the
    /// traffic): the check passes only if the server saw it come from 127.0.0.3.
    @Test func healthChecksConnectFromTheSourceAddress() throws {
        let backend = try TestBackend()
        defer { backend.stop() }
        let port = try Ports.free()
        let config = Self.config(global: "    stats socket @DIR@/admin.sock level admin", port: port, backend: """
            backend b
                source 127.0.0.3
                option httpchk GET /peer
                http-check expect string 127.0.0.3
                server s1 127.0.0.1:\(backend.port) check inter 200
            """)
        let hasp = try Hasp(config: config, waitFor: [port])
        defer { hasp.stop() }
        try eventually("the check from 127.0.0.3 to pass") {
            let stat = (try? CLIClient.ask(hasp.dir.path("admin.sock"), "show stat")) ?? ""
            return stat.split(separator: "\n").contains { $0.hasPrefix("b,s1,") && $0.contains(",UP,") && $0.contains("L7OK") }
        }
    }

    @Test func usesrcForAUserWithoutTheCapabilityIsRefusedAtStart() throws {
        let dir = try TempDir()
        let port = try Ports.free()
        let path = try dir.write("u.cfg", Self.config(global: "    user nobody\n    group nogroup", port: port,
                                                       backend: "backend b\n    source 0.0.0.0 usesrc clientip\n    server s1 127.0.0.1:9"))
        let result = try run(HaspBinary.path, ["-W", "-f", path])
        #expect(result.status == 1)
        #expect(result.stderr.contains("[ALERT]    (") && result.stderr.contains(" : [hasp.main()] Some configuration options require full privileges, so global.uid cannot be changed.\n"))
        #expect(result.stderr.contains("you may also consider using 'setcap cap_net_raw' or 'setcap cap_net_admin' in the 'global' section."))
    }

    @Test func setcapAndSourceErrorsNameTheLine() throws {
        let dir = try TempDir()
        let cases: [(String, String)] = [
            ("global\n    setcap\n", "parsing [@:2] : 'setcap' : missing capability name(s).  Supported ones are: cap_net_raw, cap_net_admin, cap_net_bind_service and cap_sys_admin."),
            ("global\n    setcap cap_net_raw,cap_chown\n", "parsing [@:2] : 'setcap' : unsupported capability 'cap_chown'.  Supported ones are: cap_net_raw, cap_net_admin, cap_net_bind_service and cap_sys_admin."),
            ("backend b\n    usesrc clientip\n", "parsing [@:2] : 'usesrc' only allowed after a 'source' statement."),
            ("backend b\n    source\n", "parsing [@:2] : 'source' expects <addr>[:<port>], and optionally 'usesrc' <addr>, and 'interface' <name>."),
            ("backend b\n    source 0.0.0.0 usesrc\n", "parsing [@:2] : 'usesrc' expects <addr>[:<port>], 'client', or 'clientip' as argument."),
            ("backend b\n    source 0.0.0.0 bogus\n", "parsing [@:2] : 'source' only supports optional keywords 'interface' and 'usesrc'."),
        ]
        for (text, message) in cases {
            let path = try dir.write("e.cfg", text)
            let result = try run(HaspBinary.path, ["-c", "-f", path])
            #expect(result.status == 1, "\(text)")
            #expect(result.stderr.contains(message.replacingOccurrences(of: "@", with: path)), "\(result.stderr)")
        }
    }

    /// `bind ... transparent` (IP_TRANSPARENT, the master binds as root) and `bind ... freebind`
    /// (IP_FREEBIND) take an address this host does not own; without either the bind fails.
    /// Nothing is ever sent to that address: readiness is read on a loopback bind.
    @Test(arguments: ["transparent", "freebind", ""])
    func transparentAndFreebindTakeAForeignAddress(_ option: String) throws {
        let dir = try TempDir()
        let port = try Ports.free()
        let foreign = try Ports.free()
        let config = """
            defaults
                mode http
                timeout client 5s
                timeout server 5s
                timeout connect 5s
            frontend f
                bind 127.0.0.1:\(port)
                bind 192.0.2.1:\(foreign) \(option)
                http-request return status 200 content-type text/plain string ok
            """
        if option.isEmpty {
            let path = try dir.write("t.cfg", config)
            let result = try run(HaspBinary.path, ["-db", "-f", path], timeout: 10)
            #expect(result.status == 1)
            #expect(result.stderr.contains("cannot bind socket (Cannot assign requested address) [192.0.2.1:\(foreign)]"), "\(result.stderr)")
            return
        }
        let hasp = try Hasp(config: config, waitFor: [port], arguments: ["-W"])
        defer { hasp.stop() }
        #expect(try curl(["http://127.0.0.1:\(port)/"]).stdout == "ok")
        let listening = try String(contentsOfFile: "/proc/net/tcp", encoding: .utf8)
        // 192.0.2.1 in /proc/net/tcp's little-endian hex, with the port.
        #expect(listening.contains(String(format: "010200C0:%04X", foreign)), "the master listens on 192.0.2.1:\(foreign)")
    }

    /// In a chroot, `log /dev/log` reaches the socket the syslog daemon opened inside it (rsyslog's
    /// `$AddUnixListenSocket <chroot>/dev/log`), while the stats socket, bound by the master
    /// outside, keeps answering.
    @Test func aChrootedWorkerLogsThroughDevLogInsideTheChroot() throws {
        let backend = try TestBackend()
        defer { backend.stop() }
        let root = try TempDir()
        chmod(root.url.path, 0o755)
        try FileManager.default.createDirectory(atPath: root.path("dev"), withIntermediateDirectories: true)
        let syslog = try SyslogReceiver(unixPath: root.path("dev/log"))
        defer { syslog.stop() }
        let port = try Ports.free()
        let hasp = try Hasp(config: Self.config(
            global: """
                log /dev/log local0
                chroot \(root.url.path)
                user nobody
                group nogroup
                stats socket @DIR@/admin.sock mode 660 level admin
            """,
            port: port, backend: "backend b\n    server s1 127.0.0.1:\(backend.port)",
            defaults: "    log global\n    option httplog"), waitFor: [port], arguments: ["-W"])
        defer { hasp.stop() }
        #expect(try curl(["http://127.0.0.1:\(port)/hello"]).stdout == "b1")
        try eventually("the request's log line in the chroot's /dev/log") {
            syslog.received.contains { $0.hasPrefix("<134>") && $0.contains("hasp[") && $0.contains("\"GET /hello HTTP/1.1\"") }
        }
        let info = try CLIClient.ask(hasp.dir.path("admin.sock"), "show info")
        #expect(info.contains("Name: "))
    }
}
