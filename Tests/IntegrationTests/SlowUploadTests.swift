import Foundation
import Synchronization
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// `timeout server` is the server side's inactivity: sending the server a request body is
/// activity, so an upload that takes longer than the timeout completes (as in HAProxy), and a
/// server that stays silent after a stalled upload still times out.
@Suite(.serialized) struct SlowUploadTests {
    /// Sends `body` one byte every `gapMs`, then reads the answer.
    static func trickle(port: Int, body: [UInt8], gapMs: UInt32) throws -> String {
        let client = try RawClient(port: port, timeout: 10)
        try client.send("POST /sum HTTP/1.1\r\nHost: x\r\nContent-Length: \(body.count)\r\nConnection: close\r\n\r\n")
        for byte in body {
            // The client's pace is what the test is about, not a wait for the proxy.
            usleep(gapMs * 1_000)
            try client.send([byte])
        }
        return String(decoding: client.readToEnd(), as: UTF8.self)
    }

    @Test func uploadsLongerThanTimeoutServerComplete() throws {
        let backend = try TestBackend()
        defer { backend.stop() }
        let port = try Ports.free()
        let hasp = try Hasp(config: httpConfig(port: port, servers: [("s1", backend.port)], timeoutServer: "1s"), waitFor: [port])
        defer { hasp.stop() }
        let oneByteAtATime = Array("abcde".utf8)
        let steady = (0..<70).map { UInt8(65 + $0 % 26) }
        var expected = (FNV1a(), FNV1a())
        expected.0.add(oneByteAtATime)
        expected.1.add(steady)
        // 5 bytes a byte every 600 ms, and 70 bytes at about 30 per second: both last over
        // twice `timeout server`.
        let slowAnswer = Mutex<String>("")
        let slowDone = DispatchSemaphore(value: 0)
        Thread.detachNewThread {
            let answer = (try? Self.trickle(port: port, body: oneByteAtATime, gapMs: 600)) ?? "failed"
            slowAnswer.withLock { $0 = answer }
            slowDone.signal()
        }
        let steadyAnswer = try Self.trickle(port: port, body: steady, gapMs: 33)
        slowDone.wait()
        let slow = slowAnswer.withLock { $0 }
        #expect(slow.hasPrefix("HTTP/1.1 200 OK\r\n"), "\(slow.prefix(60).debugDescription)")
        #expect(slow.hasSuffix("len=5 fnv=\(expected.0.hex)"))
        #expect(steadyAnswer.hasPrefix("HTTP/1.1 200 OK\r\n"), "\(steadyAnswer.prefix(60).debugDescription)")
        #expect(steadyAnswer.hasSuffix("len=70 fnv=\(expected.1.hex)"))
    }

    @Test func aServerSilentAfterAStalledUploadTimesOut() throws {
        let backend = try TestBackend()
        defer { backend.stop() }
        let port = try Ports.free()
        let hasp = try Hasp(config: httpConfig(port: port, servers: [("s1", backend.port)], timeoutServer: "1s"), waitFor: [port])
        defer { hasp.stop() }
        let client = try RawClient(port: port, timeout: 10)
        let start = Date()
        try client.send("POST /sum HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nabc")
        let answer = String(decoding: client.readToEnd(), as: UTF8.self)
        #expect(answer.hasPrefix("HTTP/1.1 504 Gateway Time-out\r\n"))
        #expect(Date().timeIntervalSince(start) < 5)
    }
}
