import Testing
@testable import Shared

#if canImport(Glibc)
import Glibc
#endif

@Suite struct MasterStateRecordTests {
    static func sample() -> MasterState {
        var s = MasterState(binaryPath: "/usr/sbin/hasp")
        s.reloads = 3
        s.failedReloads = 1
        s.masterStartedAt = 1_764_150_000
        s.lastReloadFailed = true
        s.lastReloadStatus = "Failed"
        s.lastReloadDurationMs = 42
        s.lastReloadTime = 1_764_150_100
        s.reloadClientFD = 9
        s.hardReload = true
        s.reloadStartedMs = 1_764_150_099_000
        s.runtimeState = CodecSamples.runtimeState
        s.listeners = [OwnedListener(key: "127.0.0.1:8080#-", fd: 5, frontend: "fe", address: "127.0.0.1:8080", backlog: 4096),
                       OwnedListener(key: "/tmp/s#600", fd: 6, frontend: "unix fe", address: "/tmp/s", backlog: 10)]
        s.workers = [WorkerRecord(pid: 4242, ipcFD: 7, reloads: 1, startedAt: 1_764_150_050, leaving: true, version: "0.1.0",
                                  protocolVersion: MasterWorkerProtocol.legacy),
                     WorkerRecord(pid: 4243, ipcFD: -1, reloads: 0, startedAt: 1_764_150_100, leaving: false)]
        s.cliListeners = [MasterCLIListener(fd: 4, spec: "/tmp/master.sock,level,admin")]
        return s
    }

    @Test func theStateRoundTrips() throws {
        let state = Self.sample()
        #expect(try MasterState.decode(state.encoded()) == state)
        let empty = MasterState(binaryPath: "/x")
        #expect(try MasterState.decode(empty.encoded()) == empty)
        #expect(state.descriptors == [5, 6, 7, 4, 9])
    }

    /// `MasterState.serialize()` of Hasp 0.1.0, byte for byte: a reload from that binary into
    /// this one starts by reading it.
    static let previousVersionState = """
        binary\t/usr/sbin/hasp
        reloads\t3
        failed\t1
        started\t1764150000
        lastfailed\t0
        laststatus\tSuccess
        lastduration\t42
        lasttime\t1764150100
        reloadclient\t9
        hard\t0
        reloadstart\t1764150099000
        runtime\t44096265096f6c640a530962650964796e09310930093130093109300930093132372e302e302e313a39303031093132372e302e302e313a39303031093132372e302e302e313a393030311f7765696768741f31300a5309626509733109300938093509310931303009300931302e302e302e323a38300931302e302e302e313a3830090a
        listener\t127.0.0.1:8080#-\t5\tfe\t127.0.0.1:8080\t4096
        listener\tstats#127.0.0.1:9000\t6\t#stats:0\t127.0.0.1:9000\t64
        worker\t4242\t7\t1\t1764150050\t1\t0.1.0
        worker\t4243\t8\t0\t1764150100\t0\t0.1.0
        mcli\t4\t/tmp/master.sock

        """

    @Test func aStateWrittenByThePreviousVersionIsRead() throws {
        let s = try MasterState.decode(Array(Self.previousVersionState.utf8))
        #expect(s.binaryPath == "/usr/sbin/hasp")
        #expect((s.reloads, s.failedReloads, s.masterStartedAt) == (3, 1, 1_764_150_000))
        #expect(!s.lastReloadFailed && s.lastReloadStatus == "Success" && s.lastReloadDurationMs == 42 && s.lastReloadTime == 1_764_150_100)
        #expect(s.reloadClientFD == 9 && !s.hardReload && s.reloadStartedMs == 1_764_150_099_000)
        #expect(s.runtimeState == CodecSamples.runtimeState)
        #expect(s.listeners == [OwnedListener(key: "127.0.0.1:8080#-", fd: 5, frontend: "fe", address: "127.0.0.1:8080", backlog: 4096),
                                OwnedListener(key: "stats#127.0.0.1:9000", fd: 6, frontend: "#stats:0", address: "127.0.0.1:9000", backlog: 64)])
        // Workers of the previous binary speak the text verbs.
        #expect(s.workers == [
            WorkerRecord(pid: 4242, ipcFD: 7, reloads: 1, startedAt: 1_764_150_050, leaving: true, version: "0.1.0", protocolVersion: 0),
            WorkerRecord(pid: 4243, ipcFD: 8, reloads: 0, startedAt: 1_764_150_100, leaving: false, version: "0.1.0", protocolVersion: 0),
        ])
        #expect(s.cliListeners == [MasterCLIListener(fd: 4, spec: "/tmp/master.sock")])
        // Once read, it is written in the current form.
        #expect(try MasterState.decode(s.encoded()) == s)
    }

    @Test func unknownLinesOfThePreviousFormatAreSkippedAndBadOnesRefused() throws {
        let extra = "binary\t/b\nfuture\tthing\nworker\t1\t3\t0\t5\t0\n"
        let s = try MasterState.decode(Array(extra.utf8))
        #expect(s.workers.map(\.pid) == [1])
        #expect(throws: WireError.self) { try MasterState.decode(Array("reloads\t1\n".utf8)) }
        #expect(throws: WireError.self) { try MasterState.decode(Array("binary\t/b\nworker\tx\t3\t0\t5\t0\n".utf8)) }
        #expect(throws: WireError.self) { try MasterState.decode(Array("binary\t/b\nlistener\tk\tfd\tfe\ta\t1\n".utf8)) }
        #expect(throws: WireError.self) { try MasterState.decode([0xFF, 0x00]) }
        // Odd or non-hex runtime digits do not trap.
        _ = try MasterState.decode(Array("binary\t/b\nruntime\tzz9\n".utf8))
    }

    @Test func aStateOfAnUnknownVersionOrKindIsRefused() {
        var bytes = Self.sample().encoded()
        bytes[3] = 9
        #expect(throws: WireError.unsupportedVersion(9)) { try MasterState.decode(bytes) }
        #expect(throws: WireError.self) { try MasterState.decode(MasterWorkerCodec.encode(.go)[0]) }
    }
}

@Suite struct RuntimeStateRecordTests {
    @Test func theRecordRoundTrips() throws {
        for record in [CodecSamples.runtimeState, RuntimeStateRecord()] {
            var w = WireWriter()
            record.encode(into: &w)
            var r = WireReader(w.bytes)
            #expect(try RuntimeStateRecord(from: &r) == record)
            try r.expectEnd()
        }
    }

    /// The answer of a Hasp 0.1.0 worker to `_runtime_state`.
    @Test func thePreviousTextFormIsRead() {
        let text = "D\tbe\told\n"
            + "S\tbe\tdyn\t1\t0\t10\t1\t0\t0\t127.0.0.1:9001\t127.0.0.1:9001\t127.0.0.1:9001\u{1f}weight\u{1f}10\n"
            + "S\tbe\ts1\t0\t8\t5\t1\t100\t0\t10.0.0.2:80\t10.0.0.1:80\t\n"
        #expect(RuntimeStateRecord(legacyText: text) == CodecSamples.runtimeState)
        // Lines of another shape are skipped.
        #expect(RuntimeStateRecord(legacyText: "X\t1\nS\tbe\ts\t0\tnan\t1\t1\t0\t0\ta\tb\t\nD\tonly\n").isEmpty)
    }
}

/// Malformed input of every kind ends in an error, never in a trap.
@Suite struct MasterWorkerFuzzTests {
    /// SplitMix64: deterministic, so that a failure replays.
    struct Generator: RandomNumberGenerator {
        var state: UInt64
        mutating func next() -> UInt64 {
            state &+= 0x9E37_79B9_7F4A_7C15
            var z = state
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            return z ^ (z >> 31)
        }
    }

    static var encodedSamples: [(MasterWorkerMessage, [UInt8])] {
        CodecSamples.messages.map { ($0, MasterWorkerCodec.encode($0)[0]) }
    }

    @Test func everyTruncationIsAnError() {
        for (message, bytes) in Self.encodedSamples {
            let fds = CodecSamples.fakeDescriptors(for: message)
            for length in 0..<bytes.count {
                let result = CodecSamples.decode([Array(bytes.prefix(length))], descriptors: fds)
                guard case .failure = result else {
                    Issue.record("\(message.verb) truncated to \(length) bytes decoded")
                    continue
                }
            }
        }
        let state = MasterStateRecordTests.sample().encoded()
        for length in 0..<state.count {
            #expect(throws: WireError.self) { try MasterState.decode(Array(state.prefix(length))) }
        }
    }

    @Test func wrongLengthFieldsAreErrors() {
        for (message, bytes) in Self.encodedSamples {
            for delta in [-1, 1, 1_000_000] {
                var forged = bytes
                let length = Int(bytes.count - Frame.headerSize) + delta
                guard length >= 0 else { continue }
                for i in 0..<4 { forged[6 + i] = UInt8(truncatingIfNeeded: length >> (24 - 8 * i)) }
                #expect(throws: WireError.self, "\(message.verb) \(delta)") { try Frame.parse(forged) }
            }
        }
        // An array count far beyond the bytes left is refused before anything is reserved.
        var w = WireWriter()
        w.u32(UInt32.max)
        let frame = Frame(kind: MasterWorkerCodec.Kind.config.rawValue, body: w.bytes).bytes
        guard case .failure(.badLength) = CodecSamples.decode([frame], descriptors: []) else {
            Issue.record("a forged count was accepted")
            return
        }
        // A string length past the end, inside a valid frame.
        var s = WireWriter()
        s.u32(10)
        s.u8(65)
        #expect(throws: WireError.badLength) {
            try MasterWorkerCodec.decode(kind: MasterWorkerCodec.Kind.handover.rawValue, body: s.bytes, descriptorCount: 1)
        }
    }

    @Test func randomGarbageAndMutationsNeverTrap() {
        var rng = Generator(state: 0x4841_5350)
        for _ in 0..<20_000 {
            let count = Int.random(in: 0..<64, using: &rng)
            var bytes = (0..<count).map { _ in UInt8.random(in: 0...255, using: &rng) }
            // Half of them pass the magic and version check, to reach the body decoders.
            if Bool.random(using: &rng), bytes.count >= Frame.headerSize {
                bytes.replaceSubrange(0..<4, with: Frame.magic + [MasterWorkerProtocol.current])
                bytes[5] = 0
                let length = bytes.count - Frame.headerSize
                for i in 0..<4 { bytes[6 + i] = UInt8(truncatingIfNeeded: length >> (24 - 8 * i)) }
            }
            _ = CodecSamples.decode([bytes], descriptors: [])
            _ = try? MasterState.decode(bytes)
            _ = try? LegacyVerbs.decode(bytes, descriptorCount: 0)
        }
        let state = MasterStateRecordTests.sample().encoded()
        for (message, bytes) in Self.encodedSamples + [(.go, state)] {
            for _ in 0..<500 {
                var mutated = bytes
                for _ in 0..<Int.random(in: 1...3, using: &rng) {
                    mutated[Int.random(in: 0..<mutated.count, using: &rng)] = UInt8.random(in: 0...255, using: &rng)
                }
                // Either it still decodes to something well-formed, or it is an error.
                _ = CodecSamples.decode([mutated], descriptors: CodecSamples.fakeDescriptors(for: message))
                _ = try? MasterState.decode(mutated)
            }
        }
    }
}
