import Atomics
import Foundation
import Synchronization
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// The seamless-reload promise under load: reloads every 100 ms while clients that open a new
/// connection per request and clients that keep theirs open send requests as fast as they can
/// through to a real backend. Not one request may fail.
@Suite(.serialized) struct ReloadUnderLoadTests {
    /// Counts one kind of client's answers and failures, with the first few reasons.
    final class Tally: Sendable {
        let answers = ManagedAtomic<Int>(0)
        let failures = ManagedAtomic<Int>(0)
        let reasons = Mutex<[String: Int]>([:])

        func fail(_ why: String) {
            failures.wrappingIncrement(ordering: .relaxed)
            reasons.withLock { $0[why, default: 0] += 1 }
        }

        var summary: String { reasons.withLock { $0.map { "\($1)× \($0)" }.sorted().joined(separator: "; ") } }
    }

    /// One request and its answer on `client`; returns whether the answer asked to close.
    static func exchange(_ client: RawClient, close: Bool) throws -> Bool {
        try client.send("GET /hello HTTP/1.1\r\nHost: x\r\n\(close ? "Connection: close\r\n" : "")\r\n")
        let response = try client.readResponses(1)[0]
        guard response.hasPrefix("HTTP/1.1 200"), response.hasSuffix("\r\n\r\nb1") else {
            throw HarnessError("answer \(response.prefix(40).debugDescription)")
        }
        return response.lowercased().contains("\r\nconnection: close")
    }

    static func config(port: Int, backend: Int, global: String = "") -> String {
        """
        global
            nbthread 2
        \(global)
        defaults
            mode http
            timeout connect 5s
            timeout client 30s
            timeout server 30s
            timeout http-keep-alive 30s
        frontend fe
            bind 127.0.0.1:\(port)
            default_backend be
        backend be
            server b1 127.0.0.1:\(backend)
        """
    }

    @Test(.timeLimit(.minutes(2)), arguments: ["", "hasp.idle-handover off"])
    func noRequestFailsAcrossTwoHundredReloads(_ global: String) throws {
        let backend = try TestBackend(threads: 2)
        defer { backend.stop() }
        let port = try Ports.free()
        let hasp = try startMaster(config: Self.config(port: port, backend: backend.port, global: global), port: port)
        defer { hasp.stop() }
        let firstWorker = try #require(children(of: hasp.pid).first)

        let running = ManagedAtomic<Bool>(true)
        let closing = Tally(), keepingAlive = Tally()
        let finished = DispatchGroup()
        for _ in 0..<20 {
            finished.enter()
            Thread.detachNewThread {
                defer { finished.leave() }
                while running.load(ordering: .relaxed) {
                    do {
                        _ = try Self.exchange(try RawClient(port: port, timeout: 10), close: true)
                        closing.answers.wrappingIncrement(ordering: .relaxed)
                    } catch {
                        closing.fail("\(error)")
                    }
                }
            }
        }
        // Keep-alive clients reuse their connection until an answer says it closes. Without
        // the hand-over, a worker closes idle connections at its soft stop, as HAProxy does:
        // a request sent on one at that moment can meet the close, which a client retries on
        // a new connection, as HTTP clients do for a reused connection that closed.
        let retryClosedIdle = !global.isEmpty
        for _ in 0..<20 {
            finished.enter()
            Thread.detachNewThread {
                defer { finished.leave() }
                var client: RawClient?
                while running.load(ordering: .relaxed) {
                    let reused = client != nil
                    do {
                        let connection = try client ?? RawClient(port: port, timeout: 10)
                        client = connection
                        if try Self.exchange(connection, close: false) { client = nil }
                        keepingAlive.answers.wrappingIncrement(ordering: .relaxed)
                    } catch {
                        client = nil
                        if !(reused && retryClosedIdle) { keepingAlive.fail("\(error)") }
                    }
                }
            }
        }

        // The reload cadence is the load itself (one SIGUSR2 every 100 ms), not a wait for
        // something to happen.
        let reloads = 200
        for _ in 0..<reloads {
            hasp.child.signal(SIGUSR2)
            usleep(100_000)
        }
        try eventually(timeout: 30, "the reloads to finish") {
            hasp.child.stderr.components(separatedBy: "Loading success.").count - 1 >= 1 + reloads / 2
                && children(of: hasp.pid).filter(isAlive).count == 1
        }
        running.store(false, ordering: .relaxed)
        finished.wait()

        let loaded = hasp.child.stderr.components(separatedBy: "Loading success.").count - 1
        #expect(loaded > reloads / 2, "only \(loaded) loads for \(reloads) reload signals")
        #expect(!isAlive(firstWorker))
        #expect(closing.failures.load(ordering: .relaxed) == 0, "Connection: close: \(closing.summary)")
        #expect(keepingAlive.failures.load(ordering: .relaxed) == 0, "keep-alive: \(keepingAlive.summary)")
        #expect(closing.answers.load(ordering: .relaxed) > 2_000)
        #expect(keepingAlive.answers.load(ordering: .relaxed) > 2_000)
        #expect(isAlive(hasp.pid))
    }
}
