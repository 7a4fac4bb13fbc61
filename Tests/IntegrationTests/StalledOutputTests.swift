import Foundation
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// Logging to a stdout nobody reads (a stopped pipe reader, a frozen terminal) must not stall
/// the traffic: the event loops hand their lines to a writer thread.
@Suite(.serialized) struct StalledOutputTests {
    @Test func trafficFlowsWhileStdoutIsNotRead() throws {
        let port = try Ports.free()
        let dir = try TempDir()
        let path = try dir.write("hasp.cfg", """
        global
            nbthread 1
        defaults
            mode http
            log stdout format raw local0
            option httplog
            timeout connect 2s
            timeout client 5s
            timeout server 5s
        frontend fe
            bind 127.0.0.1:\(port)
            http-request return status 200 content-type text/plain string "ok"
        """)
        // A pipe the test never reads: it fills after 64 KiB of log lines.
        var stalled: [Int32] = [0, 0]
        guard pipe(&stalled) == 0 else { throw HarnessError("pipe: \(errno)") }
        defer { close(stalled[0]) }
        let child: ChildProcess
        do {
            defer { close(stalled[1]) }
            child = try ChildProcess(HaspBinary.path, ["-db", "-f", path], dir: dir, name: "hasp", stdout: stalled[1])
        }
        defer { child.stop() }
        try eventually("hasp to listen") { Ports.isAccepting(port) }
        // 3,000 requests log about 300 KB: far past what the pipe holds.
        let client = try RawClient(port: port, timeout: 5)
        for i in 0..<3_000 {
            try client.send("GET /request/\(i) HTTP/1.1\r\nHost: x\r\n\r\n")
            let answer = try client.readResponses(1)[0]
            guard answer.hasSuffix("ok") else {
                Issue.record("request \(i): \(answer.prefix(40).debugDescription)")
                return
            }
        }
    }
}
