import Foundation
import Synchronization
import Testing

/// Memory that must come back once connections are gone. A handler that kept its channel
/// context after removal once held every closed session (with its last receive buffer): about
/// 3-6 KB per HTTP connection and 0.6 KB per TCP one, forever.
@Suite(.serialized) struct MemoryTests {
    /// Opens `count` connections from four threads; each sends a `Connection: close` request
    /// and reads to the end. Returns how many did not get a 200.
    private func closeConnections(port: Int, count: Int) -> Int {
        let failures = Atomic(0)
        DispatchQueue.concurrentPerform(iterations: 4) { lane in
            for _ in stride(from: lane, to: count, by: 4) {
                // (The test backend keeps its connections open: the client reads one answer
                // and closes, which ends a TCP session too.)
                guard let client = try? RawClient(port: port, timeout: 5),
                      (try? client.send("GET /hello HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")) != nil,
                      let answer = try? client.readResponses(1).first, answer.hasPrefix("HTTP/1.1 200") else {
                    failures.add(1, ordering: .relaxed)
                    continue
                }
            }
        }
        return failures.load(ordering: .relaxed)
    }

    @Test func closedConnectionsGiveTheirMemoryBack() throws {
        let backend = try TestBackend(threads: 2)
        defer { backend.stop() }
        let (httpPort, tcpPort) = (try Ports.free(), try Ports.free())
        let config = httpConfig(port: httpPort, servers: [("s1", backend.port)],
                                globalExtra: "    stats socket @DIR@/stats.sock level admin") + """

        frontend tcp
            mode tcp
            bind 127.0.0.1:\(tcpPort)
            default_backend be_tcp
        backend be_tcp
            mode tcp
            server s1 127.0.0.1:\(backend.port)
        """
        let hasp = try Hasp(config: config, waitFor: [httpPort, tcpPort])
        defer { hasp.stop() }
        for (name, port, rounds, allowedKB) in [("HTTP", httpPort, 8_000, 4_096), ("TCP", tcpPort, 8_000, 2_048)] {
            // Warm up: pools, buffers and the allocator's arenas reach their steady size.
            #expect(closeConnections(port: port, count: 2_000) == 0, "\(name) warm-up")
            let before = residentKilobytes(hasp.pid)
            #expect(closeConnections(port: port, count: rounds) == 0, "\(name) requests")
            // Sessions close a tick after their last byte: wait for the count to settle.
            try eventually("the \(name) sessions to close") {
                let info = try CLIClient.ask(hasp.dir.path("stats.sock"), "show info")
                return info.contains("\nCurrConns: 0\n")
            }
            let grown = residentKilobytes(hasp.pid) - before
            #expect(grown < allowedKB, "\(name): \(grown) KB more after \(rounds) closed connections")
        }
    }
}
