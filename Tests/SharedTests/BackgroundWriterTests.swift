import Foundation
import Testing
@testable import Shared

#if canImport(Glibc)
import Glibc
#endif

/// The writer an event loop reports through: it never waits for the reader of the descriptor.
@Suite struct BackgroundWriterTests {
    @Test func enqueueingNeverWaitsForAStoppedReaderAndKeepsTheOrder() throws {
        var fds: [Int32] = [0, 0]
        try #require(pipe(&fds) == 0)
        defer { close(fds[0]); close(fds[1]) }
        let writer = BackgroundWriter(fd: fds[1], limit: 1 << 20)
        // 4,000 lines of 100 bytes: six times what a pipe holds, and nobody reads yet.
        let lines = (0..<4_000).map { Array(String(format: "%099d\n", $0).utf8) }
        let start = Date()
        for line in lines { writer.enqueue(line) }
        #expect(Date().timeIntervalSince(start) < 1, "enqueue waited for the pipe")
        // Now read everything back: all of it, in order.
        var received: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 65_536)
        let expected = lines.reduce(0) { $0 + $1.count }
        while received.count < expected {
            let n = read(fds[0], &buffer, buffer.count)
            guard n > 0 else { break }
            received.append(contentsOf: buffer[0..<n])
        }
        #expect(received == Array(lines.joined()))
        // Idle again before the pipe closes (its thread outlives the test).
        #expect(writer.flush())
        #expect(writer.dropped == 0)
    }

    @Test func pastItsLimitLinesAreDroppedAndCounted() throws {
        var fds: [Int32] = [0, 0]
        try #require(pipe(&fds) == 0)
        defer { close(fds[0]); close(fds[1]) }
        // Fill the pipe first: the writer cannot write anything, so it holds at most one batch of
        // 1,000 bytes in its blocked write and 1,000 more may wait; the rest is dropped.
        _ = fcntl(fds[1], F_SETFL, fcntl(fds[1], F_GETFL) | O_NONBLOCK)
        let chunk = [UInt8](repeating: 66, count: 4_096)
        while chunk.withUnsafeBytes({ write(fds[1], $0.baseAddress, $0.count) }) > 0 {}
        _ = fcntl(fds[1], F_SETFL, fcntl(fds[1], F_GETFL) & ~O_NONBLOCK)
        let writer = BackgroundWriter(fd: fds[1], limit: 1_000)
        for _ in 0..<40 { writer.enqueue([UInt8](repeating: 65, count: 100)) }
        #expect(writer.dropped >= 20)
        // Nobody reads: a flush gives up at its deadline instead of waiting forever.
        let start = Date()
        #expect(!writer.flush(timeoutMs: 200))
        #expect(Date().timeIntervalSince(start) < 2)
        // Drain the pipe until the writer is idle, so that closing it cannot touch a write in
        // progress (its thread outlives the test).
        _ = fcntl(fds[0], F_SETFL, fcntl(fds[0], F_GETFL) | O_NONBLOCK)
        var buffer = [UInt8](repeating: 0, count: 65_536)
        try eventuallyTrue {
            while read(fds[0], &buffer, buffer.count) > 0 {}
            return writer.flush(timeoutMs: 10)
        }
    }

    /// Polls `condition` for up to 5 s.
    func eventuallyTrue(_ condition: () -> Bool) throws {
        let deadline = Date().addingTimeInterval(5)
        while Date() < deadline {
            if condition() { return }
        }
        Issue.record("condition not met within 5 s")
    }
}

@Suite struct BackgroundWriterWriteThroughTests {
    @Test func aLineIsOutOnReturnWhenTheDescriptorHasRoom() throws {
        var fds: [Int32] = [0, 0]
        try #require(pipe(&fds) == 0)
        defer { close(fds[0]); close(fds[1]) }
        let writer = BackgroundWriter(fd: fds[1])
        writer.write(Array("first\n".utf8))
        // Already in the pipe: a non-blocking read finds it without waiting for any thread.
        _ = fcntl(fds[0], F_SETFL, fcntl(fds[0], F_GETFL) | O_NONBLOCK)
        var buffer = [UInt8](repeating: 0, count: 64)
        let n = read(fds[0], &buffer, buffer.count)
        #expect(n == 6 && Array(buffer[0..<6]) == Array("first\n".utf8))
        #expect(writer.flush())
    }
}
