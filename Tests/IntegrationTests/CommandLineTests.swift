import Foundation
import Testing

#if canImport(Glibc)
import Glibc
#endif

@Suite struct CommandLineTests {
    @Test func checkModeAcceptsAValidFile() throws {
        let dir = try TempDir()
        let cfg = try dir.write("ok.cfg", "defaults\n mode http\n timeout client 1s\n timeout connect 1s\n timeout server 1s\nlisten l\n bind 127.0.0.1:1\n server s 127.0.0.1:2\n")
        let r = try run(HaspBinary.path, ["-c", "-f", cfg])
        #expect(r.status == 0)
        #expect(r.stdout == "Configuration file is valid\n")
        let quiet = try run(HaspBinary.path, ["-c", "-q", "-f", cfg])
        #expect(quiet.status == 0 && quiet.stdout == "")
        // Nothing to listen on: valid, but exit 2, as haproxy says it.
        let idle = try dir.write("idle.cfg", "defaults\n timeout client 1s\n timeout connect 1s\n timeout server 1s\nbackend b\n server s 127.0.0.1:2\n")
        let verdict = try run(HaspBinary.path, ["-c", "-f", idle])
        #expect(verdict.status == 2)
        #expect(verdict.stdout == "Configuration file has no error but will not start (no listener) => exit(2).\n")
        if FileManager.default.fileExists(atPath: DifferentialCheckTests.haproxy) {
            let theirs = try run(DifferentialCheckTests.haproxy, ["-c", "-f", idle])
            #expect(theirs.status == 2 && theirs.stdout == verdict.stdout)
        }
    }

    @Test func checkModeReportsErrorsWithFileAndLine() throws {
        let dir = try TempDir()
        let cfg = try dir.write("bad.cfg", "global\n  maxconn 10\nfrontend fe\n  bind :8080\n  defualt_backend be\n")
        let r = try run(HaspBinary.path, ["-c", "-f", cfg])
        #expect(r.status == 1)
        #expect(r.stderr.contains("[ALERT]    ("))
        #expect(r.stderr.contains(") : config : parsing [\(cfg):5] : unknown keyword 'defualt_backend' in 'frontend' section; did you mean 'default_backend' maybe ?"))
        #expect(r.stderr.contains("config : Error(s) found in configuration file : \(cfg)"))
        #expect(r.stderr.contains("config : Fatal errors found in configuration."))
        // Starting for real with the same file fails the same way.
        let start = try run(HaspBinary.path, ["-db", "-f", cfg])
        #expect(start.status == 1)
    }

    /// A file whose last line has no line feed may have been truncated (a deploy that copied half
    /// of it): HAProxy refuses it, so does Hasp.
    @Test func aFileWithoutAFinalLineFeedIsRefused() throws {
        let dir = try TempDir()
        let path = dir.path("truncated.conf")
        try "defaults\n    mode http\n    timeout client 1s".write(toFile: path, atomically: true, encoding: .utf8)
        let r = try run(HaspBinary.path, ["-c", "-f", path])
        #expect(r.status == 1)
        #expect(r.stderr.contains(") : config : parsing [\(path):3]: Missing LF on last line, file might have been truncated at position 22."))
        #expect(r.stderr.contains("config : Error(s) found in configuration file : \(path)"))
        // Read whole now; with nothing to listen on, haproxy's exit 2.
        try "defaults\n    mode http\n    timeout client 1s\n".write(toFile: path, atomically: true, encoding: .utf8)
        #expect(try run(HaspBinary.path, ["-c", "-q", "-f", path]).status == 2)
    }

    @Test func warningsAndZeroWarning() throws {
        let dir = try TempDir()
        let cfg = try dir.write("warn.cfg", "backend be\n server s 127.0.0.1:2\n")
        let r = try run(HaspBinary.path, ["-c", "-f", cfg])
        #expect(r.status == 2)
        #expect(r.stdout == "Warnings were found.\nConfiguration file has no error but will not start (no listener) => exit(2).\n")
        let strict = try run(HaspBinary.path, ["-c", "-dW", "-f", cfg])
        #expect(strict.status == 1)
        #expect(strict.stderr.contains("Some warnings were found and 'zero-warning' is set. Aborting."))
    }

    @Test func directoriesLoadCfgFilesInOrder() throws {
        let dir = try TempDir()
        try FileManager.default.createDirectory(atPath: dir.path("conf.d"), withIntermediateDirectories: true)
        _ = try dir.write("conf.d/10-defaults.cfg", "defaults\n mode http\n timeout client 1s\n timeout connect 1s\n timeout server 1s\n")
        _ = try dir.write("conf.d/20-listen.cfg", "listen l\n bind 127.0.0.1:1\n server s 127.0.0.1:2\n")
        _ = try dir.write("conf.d/.hidden.cfg", "this would not parse\n")
        _ = try dir.write("conf.d/notes.txt", "neither would this\n")
        let r = try run(HaspBinary.path, ["-c", "-f", dir.path("conf.d")])
        #expect(r.status == 0, "\(r.stderr)")
        let missing = try run(HaspBinary.path, ["-c", "-f", dir.path("nope.cfg")])
        #expect(missing.status == 1)
        #expect(missing.stderr.contains("Cannot open configuration file/directory \(dir.path("nope.cfg")) : No such file or directory"))
    }

    @Test func conditionsAndVersion() throws {
        #expect(try run(HaspBinary.path, ["-cc", "version_atleast(2.4)"]).status == 0)
        #expect(try run(HaspBinary.path, ["-cc", "feature(NO_SUCH_FEATURE)"]).status == 1)
        #expect(try run(HaspBinary.path, ["-cc", "bogus("]).status == 2)
        let v = try run(HaspBinary.path, ["-v"])
        #expect(v.status == 0 && v.stdout.hasPrefix("Hasp version "))
    }

    @Test func unknownFlagPrintsUsage() throws {
        let r = try run(HaspBinary.path, ["-Z"])
        #expect(r.status == 1)
        #expect(r.stderr.contains("Usage : hasp [-f <cfgfile|cfgdir>]*"))
        let s = try run(HaspBinary.path, ["-S", "/tmp/x.sock", "-f", "/dev/null"])
        #expect(s.status == 1)
        #expect(s.stderr.contains("a master CLI socket was defined, but master-worker mode (-W) is not enabled."))
        let missing = try run(HaspBinary.path, ["-W", "-S"])
        #expect(missing.status == 1 && missing.stderr.contains("Socket and optional bind parameters expected with the -S flag"))
        let badOption = try run(HaspBinary.path, ["-W", "-S", "/tmp/m.sock,mode", "-f", "/dev/null"])
        #expect(badOption.status == 1 && badOption.stderr.contains("expects a value"))
        let goodOption = try run(HaspBinary.path, ["-c", "-W", "-S", "/tmp/m.sock,mode,600,level,admin", "-f", "/dev/null"])
        #expect(goodOption.status == 0, "\(goodOption.stderr)")
    }

    @Test func daemonModeDetachesAndWritesThePidfile() throws {
        let dir = try TempDir()
        let port = try Ports.free()
        let pidfile = dir.path("hasp.pid")
        let cfg = try dir.write("d.cfg", "defaults\n mode http\n timeout client 1s\nfrontend fe\n bind 127.0.0.1:\(port)\n http-request return status 200\n")
        let launcher = try run(HaspBinary.path, ["-D", "-p", pidfile, "-f", cfg], timeout: 10)
        #expect(launcher.status == 0, "\(launcher.stderr)")
        let text = try String(contentsOfFile: pidfile, encoding: .utf8)
        let pid = try #require(Int32(text.trimmingCharacters(in: .newlines)))
        defer { kill(pid, SIGKILL) }
        #expect(text == "\(pid)\n")
        #expect(Ports.isAccepting(port))
        kill(pid, SIGTERM)
        try eventually("the daemon to exit") { kill(pid, 0) != 0 }
    }

    @Test func bindFailureExitsOne() throws {
        let backend = try TestBackend()
        defer { backend.stop() }
        let dir = try TempDir()
        let cfg = try dir.write("b.cfg", "defaults\n mode http\n timeout client 1s\nfrontend fe\n bind 127.0.0.1:\(backend.port)\n http-request return status 200\n")
        let r = try run(HaspBinary.path, ["-db", "-f", cfg])
        #expect(r.status == 1)
        #expect(r.stderr.contains("Starting frontend fe: cannot bind socket (Address already in use) [127.0.0.1:\(backend.port)]"))
    }

    @Test func commandLineLimitsThePeerNameAndSetenvReachTheWorkers() throws {
        let port = try Ports.free()
        let config = """
            global
                stats socket @DIR@/admin.sock level admin
                setenv GREETING hello
            defaults
                mode http
                timeout client 1s
            frontend fe
                bind 127.0.0.1:\(port)
                http-request return status 200 content-type text/plain lf-string "${HAPROXY_LOCALPEER} %[env(GREETING)]"
            """
        let hasp = try Hasp(config: config, waitFor: [port], arguments: ["-W", "-db", "-n", "77", "-L", "edge1"])
        defer { hasp.stop() }
        // The master listens first; the worker binds the unix socket once it serves.
        try eventually("the worker") { FileManager.default.fileExists(atPath: hasp.dir.path("admin.sock")) }
        let info = try CLIClient.ask(hasp.dir.path("admin.sock"), "show info")
        #expect(info.contains("Maxconn: 77\n"))
        // `setenv` reaches the worker's environment, where `env()` reads it per request.
        #expect(try curl(["-s", "http://127.0.0.1:\(port)/"]).stdout == "edge1 hello")
    }
}
