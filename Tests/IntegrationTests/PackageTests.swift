import Foundation
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// The Debian package on this machine (`make deb-test`, which builds it and sets HASP_DEB):
/// installed with dpkg, started, reloaded under traffic, restarted and stopped through its init
/// script,
/// its workers checked for user and capabilities, its log lines followed through rsyslog's
/// socket in the chroot to /var/log/hasp.log, and purged at the end.
@Suite(.serialized, .enabled(if: packageUnderTest != nil && getuid() == 0, "set HASP_DEB (make deb-test), as root"))
struct PackageTests {
    static let deb = packageUnderTest

    static func sh(_ command: String, timeout: Double = 120) throws -> (status: Int32, stdout: String, stderr: String) {
        try run("/bin/sh", ["-c", command], timeout: timeout)
    }

    static func pid(in path: String) -> Int32? {
        (try? String(contentsOfFile: path, encoding: .utf8)).flatMap { Int32($0.trimmingCharacters(in: .whitespacesAndNewlines)) }
    }

    @Test func installStartReloadStopPurge() throws {
        let deb = try #require(Self.deb)
        let work = try TempDir()
        // Nothing of a previous run left over.
        _ = try? Self.sh("/etc/init.d/hasp stop; dpkg --purge hasp")

        let install = try Self.sh("DEBIAN_FRONTEND=noninteractive dpkg -i \(deb)")
        #expect(install.status == 0, "\(install)")
        defer { _ = try? Self.sh("/etc/init.d/hasp stop; dpkg --purge hasp") }
        // Without systemd, dpkg may have started it (unless policy-rc.d said no): start from a stop.
        _ = try Self.sh("/etc/init.d/hasp stop")

        // The layout of Debian's haproxy package.
        for path in ["/usr/sbin/hasp", "/etc/hasp/hasp.cfg", "/etc/hasp/errors/503.http", "/etc/default/hasp",
                     "/lib/systemd/system/hasp.service", "/etc/init.d/hasp", "/usr/lib/tmpfiles.d/hasp.conf",
                     "/etc/logrotate.d/hasp", "/etc/rsyslog.d/49-hasp.conf", "/usr/share/man/man1/hasp.1.gz",
                     "/usr/share/man/man5/hasp.cfg.5.gz", "/usr/share/doc/hasp/README.Debian",
                     "/usr/share/doc/hasp/copyright", "/var/lib/hasp/dev"] {
            #expect(FileManager.default.fileExists(atPath: path), "\(path) is installed")
        }
        let user = try #require(getpwnam("hasp"), "postinst creates the hasp user")
        let haspUID = user.pointee.pw_uid
        #expect(getgrnam("hasp") != nil)
        // The Swift runtime is inside the binary: nothing from the toolchain at run time.
        let ldd = try Self.sh("ldd /usr/sbin/hasp")
        #expect(!ldd.stdout.contains("/opt/swift") && !ldd.stdout.contains("not found") && !ldd.stdout.contains("libswift"), "\(ldd.stdout)")
        // The packaged configuration is valid as shipped.
        let check = try Self.sh("/usr/sbin/hasp -c -f /etc/hasp/hasp.cfg")
        #expect(check.status == 0 && check.stdout.contains("Configuration file is valid"), "\(check)")
        // The unit passes systemd's own checks.
        let verify = try Self.sh("systemd-analyze verify /lib/systemd/system/hasp.service")
        #expect(verify.status == 0, "\(verify)")

        // rsyslog with the package's snippet: its listening socket inside the chroot, hasp's
        // lines to /var/log/hasp.log.
        try? FileManager.default.removeItem(atPath: "/var/log/hasp.log")
        let rsyslogConf = try work.write("rsyslog.conf", """
            module(load="imuxsock" SysSock.Use="off")
            global(workDirectory="\(work.url.path)")
            $IncludeConfig /etc/rsyslog.d/49-hasp.conf
            """)
        let rsyslog = try ChildProcess("/usr/sbin/rsyslogd", ["-n", "-f", rsyslogConf, "-i", work.path("rsyslog.pid")], dir: work, name: "rsyslog")
        defer { rsyslog.stop() }
        try eventually("rsyslog's socket in the chroot") { FileManager.default.fileExists(atPath: "/var/lib/hasp/dev/log") }

        // The operator's configuration: the packaged global section's layout, a site behind it.
        let backend = try TestBackend()
        defer { backend.stop() }
        let port = try Ports.free()
        let config = try work.write("site.cfg", """
            global
                log /dev/log local0
                chroot /var/lib/hasp
                stats socket /run/hasp/admin.sock mode 660 level admin
                user hasp
                group hasp
                setcap cap_net_admin
                daemon
            defaults
                log global
                mode http
                option httplog
                timeout connect 5s
                timeout client 30s
                timeout server 30s
            frontend site
                bind 127.0.0.1:\(port)
                default_backend app
            backend app
                source 0.0.0.0 usesrc clientip
                server s1 127.0.0.1:\(backend.port)
            """)
        chmod(work.url.path, 0o755)
        let defaults = try String(contentsOfFile: "/etc/default/hasp", encoding: .utf8)
        try (defaults + "CONFIG=\"\(config)\"\n").write(toFile: "/etc/default/hasp", atomically: true, encoding: .utf8)

        let start = try Self.sh("/etc/init.d/hasp start")
        #expect(start.status == 0, "\(start)")
        let master = try #require(Self.pid(in: "/run/hasp.pid"), "the pidfile names the master")
        #expect(kill(master, 0) == 0)
        #expect(FileManager.default.fileExists(atPath: "/run/hasp-master.sock"), "the master CLI of EXTRAOPTS")
        #expect(try Self.sh("/etc/init.d/hasp status").status == 0)
        try eventually("the site to listen") { Ports.isAccepting(port) }
        let proc = try CLIClient.ask("/run/hasp-master.sock", "show proc")
        #expect(proc.contains("master") && proc.contains("worker"), "\(proc)")
        let info = try CLIClient.ask("/run/hasp/admin.sock", "show info")
        #expect(info.contains("Pid: "))

        // The worker: user hasp, exactly cap_net_admin (bit 12) on every thread.
        var worker: Int32 = 0
        try eventually("a worker") {
            worker = children(of: master).first ?? 0
            return worker != 0
        }
        // A first answer tells that the worker is past its start-up and its privilege drop.
        let seen = try curl(["--interface", "127.0.0.2", "http://127.0.0.1:\(port)/peer"])
        #expect(seen.stdout == "127.0.0.2", "usesrc clientip from the unprivileged worker: \(seen)")
        let threads = PrivilegeTests.capabilities(of: worker)
        #expect(!threads.isEmpty, "the worker's threads can be read")
        for thread in threads {
            #expect(thread["Uid"] == UInt64(haspUID))
            #expect(thread["CapEff"] == 1 << 12)
            #expect(thread["CapPrm"] == 1 << 12)
        }

        // Reload twice under traffic: not one request fails.
        let failures = Atomic(0), successes = Atomic(0), stop = Atomic(0)
        let group = DispatchGroup()
        for _ in 0..<4 {
            DispatchQueue.global().async(group: group) {
                while stop.value == 0 {
                    let r = try? curl(["-o", "/dev/null", "-w", "%{http_code}", "http://127.0.0.1:\(port)/hello"], timeout: 10)
                    if r?.stdout == "200" { successes.add(1) } else { failures.add(1) }
                }
            }
        }
        // The traffic ends with the test, whatever fails on the way.
        defer { if stop.value == 0 { stop.add(1) } }
        // Each reload, and the stop, waits until more requests have been served: the traffic
        // runs before, between and after the reloads.
        func trafficGoesOn() throws {
            let before = successes.value + failures.value
            try eventually("requests to be served") { successes.value + failures.value >= before + 10 }
        }
        var served = Set([worker])
        for _ in 0..<2 {
            try trafficGoesOn()
            let reload = try Self.sh("/etc/init.d/hasp reload")
            #expect(reload.status == 0, "\(reload)")
            var fresh: Int32 = 0
            try eventually("the new worker") {
                fresh = children(of: master).first { !served.contains($0) } ?? 0
                return fresh != 0
            }
            served.insert(fresh)
        }
        try trafficGoesOn()
        stop.add(1)
        group.wait()
        #expect(failures.value == 0 && successes.value > 20, "\(failures.value) failed, \(successes.value) served")
        #expect(Self.pid(in: "/run/hasp.pid") == master, "a reload keeps the master")

        // The traffic's lines went through the chroot's /dev/log to rsyslog's file.
        try eventually(timeout: 15, "the access log in /var/log/hasp.log") {
            let log = (try? String(contentsOfFile: "/var/log/hasp.log", encoding: .utf8)) ?? ""
            return log.contains("hasp[") && log.contains("site app/s1") && log.contains("\"GET /hello HTTP/1.1\"")
        }

        // restart: a new master, serving again.
        let restart = try Self.sh("/etc/init.d/hasp restart")
        #expect(restart.status == 0, "\(restart)")
        let restarted = try #require(Self.pid(in: "/run/hasp.pid"))
        #expect(restarted != master && kill(master, 0) != 0, "restart replaces the master")
        try eventually("the site to answer after the restart") {
            (try? curl(["http://127.0.0.1:\(port)/hello"], timeout: 2).stdout) == "b1"
        }

        let stopped = try Self.sh("/etc/init.d/hasp stop")
        #expect(stopped.status == 0, "\(stopped)")
        try eventually("the master to exit") { kill(restarted, 0) != 0 }
        #expect(!FileManager.default.fileExists(atPath: "/run/hasp.pid"))
        #expect(try Self.sh("/etc/init.d/hasp status").status == 3)

        let purge = try Self.sh("dpkg --purge hasp")
        #expect(purge.status == 0, "\(purge)")
        #expect(getpwnam("hasp") == nil, "purge removes the user")
        #expect(!FileManager.default.fileExists(atPath: "/etc/hasp/hasp.cfg"))
    }
}

extension PackageTests {
    /// `make install DESTDIR=... PREFIX=/usr` lays out the package's tree, less what only a
    /// Debian package has (changelog, copyright, README.Debian, lintian overrides).
    @Test func makeInstallLaysOutThePackagesTree() throws {
        let deb = try #require(Self.deb)
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().path
        let work = try TempDir()
        let install = try Self.sh("make -s -C \(root) install-files DESTDIR=\(work.path("root")) PREFIX=/usr")
        #expect(install.status == 0, "\(install)")
        let installed = try Self.sh("cd \(work.path("root")) && find . -type f | sort").stdout
        let packaged = try Self.sh("dpkg -c \(deb) | awk '$1 !~ /^d/ {print $6}' | sed 's/[.]gz$//' | grep -v -e /changelog -e /copyright -e /README.Debian -e /lintian/ | sort").stdout
        #expect(!installed.isEmpty && installed == packaged)
    }
}

/// The .deb `make deb-test` built.
private let packageUnderTest = ProcessInfo.processInfo.environment["HASP_DEB"]

/// A counter shared with the traffic threads.
private final class Atomic: @unchecked Sendable {
    private let lock = NSLock()
    private var count: Int
    init(_ value: Int) { count = value }
    var value: Int { lock.lock(); defer { lock.unlock() }; return count }
    func add(_ n: Int) { lock.lock(); count += n; lock.unlock() }
}
