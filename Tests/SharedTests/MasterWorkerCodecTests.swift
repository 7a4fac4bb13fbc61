import Testing
@testable import Shared

#if canImport(Glibc)
import Glibc
#endif

/// Samples used by several suites.
enum CodecSamples {
    static let runtimeState = RuntimeStateRecord(entries: [
        .deleted(backend: "be", server: "old"),
        .server(.init(backend: "be", name: "dyn", dynamic: true, adminBits: 0, weight: 10, initialWeight: 1, maxconn: 0,
                      initialMaxconn: 0, address: "127.0.0.1:9001", initialAddress: "127.0.0.1:9001",
                      addArguments: ["127.0.0.1:9001", "weight", "10"])),
        .server(.init(backend: "be", name: "s1", dynamic: false, adminBits: 8, weight: 5, initialWeight: 1, maxconn: 100,
                      initialMaxconn: 0, address: "10.0.0.2:80", initialAddress: "10.0.0.1:80", addArguments: [])),
    ])

    /// Every message, with non-trivial payloads.
    static let messages: [MasterWorkerMessage] = [
        .config([.init(name: "a.cfg", text: "global\n  maxconn 10\n", mustEndWithLineFeed: true),
                 .init(name: "", text: "", mustEndWithLineFeed: false),
                 .init(name: "é.cfg", text: "frontend fé\n")]),
        .config([]),
        .runtimeState(runtimeState),
        .runtimeState(RuntimeStateRecord()),
        .runtimeStateRequest,
        .listeners(count: 130),
        .listenerBatch([.init(frontend: "fe", address: "127.0.0.1:8080", backlog: 4096),
                        .init(frontend: "#stats:0", address: "[::1]:9000", backlog: -1)]),
        .listenerBatch([]),
        .ack(count: 64),
        .go,
        .ready(pid: 4242),
        .handover(frontend: "fe one"),
        .adopt(frontend: "fe"),
        .cli,
        .stop,
        .files(ConfigFiles.Bundle(files: ["/etc/ssl/a.pem": Array("-----BEGIN CERTIFICATE-----\n".utf8), "/empty": []],
                                  directories: ["/etc/ssl": ["a.pem", "b.pem"], "/none": []])),
        .files(ConfigFiles.Bundle()),
    ]

    /// Stand-ins for a message's descriptors: decoding only counts them, and closing -1 (as a
    /// refused message's descriptors are) touches nothing another test may hold.
    static func fakeDescriptors(for message: MasterWorkerMessage) -> [Int32] {
        Array(repeating: -1, count: message.descriptorCount)
    }

    static func decode(_ datagrams: [[UInt8]], descriptors: [Int32], version: UInt8 = MasterWorkerProtocol.current) -> Result<ReceivedMessage?, WireError> {
        var decoder = MessageDecoder(version: version)
        var result: Result<ReceivedMessage?, WireError> = .success(nil)
        for (i, d) in datagrams.enumerated() {
            result = decoder.feed(d, descriptors: i == datagrams.count - 1 ? descriptors : [])
            if case .failure = result { return result }
        }
        return result
    }
}

@Suite struct MasterWorkerMessageTests {
    @Test(arguments: CodecSamples.messages)
    func everyMessageRoundTrips(_ message: MasterWorkerMessage) throws {
        let fds = CodecSamples.fakeDescriptors(for: message)
        let datagrams = MasterWorkerCodec.encode(message)
        #expect(datagrams.count == 1)
        let decoded = try CodecSamples.decode(datagrams, descriptors: fds).get()
        #expect(decoded?.message == message)
        #expect(decoded?.descriptors == fds)
    }

    @Test func framesStartWithMagicAndVersion() {
        let bytes = MasterWorkerCodec.encode(.go)[0]
        #expect(Array(bytes.prefix(4)) == [0x00, 0x48, 0x57, MasterWorkerProtocol.current])
        #expect(bytes.count == Frame.headerSize)
    }

    @Test func aLargeMessageSpansSeveralDatagramsAndComesBackWhole() throws {
        let text = String(repeating: "backend b\n  server s 127.0.0.1:80\n", count: 6_000)
        let message = MasterWorkerMessage.config([.init(name: "big.cfg", text: text)])
        let datagrams = MasterWorkerCodec.encode(message)
        #expect(datagrams.count > 3)
        #expect(datagrams.allSatisfy { $0.count <= IPCChannel.maxMessage })
        #expect(try CodecSamples.decode(datagrams, descriptors: []).get()?.message == message)
        // Until the last fragment, nothing is complete.
        var decoder = MessageDecoder(version: MasterWorkerProtocol.current)
        for d in datagrams.dropLast() {
            guard case .success(nil) = decoder.feed(d, descriptors: []) else {
                Issue.record("a fragment completed a message")
                return
            }
        }
    }

    @Test func theDescriptorCountMustMatchTheMessage() {
        for message in CodecSamples.messages {
            let wrong = CodecSamples.fakeDescriptors(for: message).count + 1
            #expect(throws: WireError.self) {
                try MasterWorkerCodec.decode(kind: MasterWorkerCodec.kind(of: message).rawValue,
                                             body: MasterWorkerCodec.body(of: message), descriptorCount: wrong)
            }
        }
    }

    @Test func frameHeadersAreCheckedStrictly() throws {
        let good = MasterWorkerCodec.encode(.ready(pid: 7))[0]
        var otherVersion = good
        otherVersion[3] = 2
        #expect(throws: WireError.unsupportedVersion(2)) { try Frame.parse(otherVersion) }
        var badFlags = good
        badFlags[5] = 0x80
        #expect(throws: WireError.self) { try Frame.parse(badFlags) }
        var badKind = good
        badKind[4] = 0xEE
        #expect(throws: WireError.unknownKind(0xEE)) {
            let f = try Frame.parse(badKind)
            _ = try MasterWorkerCodec.decode(kind: f.kind, body: f.body, descriptorCount: 0)
        }
        #expect(throws: WireError.notAFrame) { try Frame.parse(Array("READY 12".utf8)) }
        #expect(throws: WireError.truncated) { try Frame.parse([]) }
    }

    @Test func interleavedFragmentsAreRefused() throws {
        let big = MasterWorkerCodec.encode(.config([.init(name: "x", text: String(repeating: "x", count: 100_000))]))
        var decoder = MessageDecoder(version: MasterWorkerProtocol.current)
        _ = decoder.feed(big[0], descriptors: [])
        guard case .failure = decoder.feed(MasterWorkerCodec.encode(.go)[0], descriptors: []) else {
            Issue.record("an interleaved message was accepted")
            return
        }
        // The decoder starts over afterwards.
        #expect(try decoder.feed(MasterWorkerCodec.encode(.go)[0], descriptors: []).get()?.message == .go)
    }

    @Test func descriptorsOfARefusedMessageAreClosed() throws {
        var fds: [Int32] = [0, 0]
        #expect(pipe(&fds) == 0)
        var decoder = MessageDecoder(version: MasterWorkerProtocol.current)
        // `go` carries no descriptor: both are refused, and closed.
        guard case .failure = decoder.feed(MasterWorkerCodec.encode(.go)[0], descriptors: fds) else {
            Issue.record("accepted")
            return
        }
        #expect(fcntl(fds[0], F_GETFD) == -1)
        #expect(fcntl(fds[1], F_GETFD) == -1)
    }
}

@Suite struct LegacyVerbTests {
    @Test func theTextVerbsOfProtocolZeroDecode() throws {
        #expect(try LegacyVerbs.decode(Array("HANDOVER fe".utf8), descriptorCount: 1) == .handover(frontend: "fe"))
        #expect(try LegacyVerbs.decode(Array("ADOPT my front".utf8), descriptorCount: 1) == .adopt(frontend: "my front"))
        #expect(try LegacyVerbs.decode(Array("READY 4242".utf8), descriptorCount: 0) == .ready(pid: 4242))
        #expect(try LegacyVerbs.decode(Array("CLI".utf8), descriptorCount: 1) == .cli)
        #expect(try LegacyVerbs.decode(Array("STOP".utf8), descriptorCount: 0) == .stop)
        #expect(try LegacyVerbs.decode(Array("ACK 64".utf8), descriptorCount: 0) == .ack(count: 64))
        #expect(try LegacyVerbs.decode(Array("LISTENERS 3".utf8), descriptorCount: 0) == .listeners(count: 3))
        #expect(try LegacyVerbs.decode(Array("GO".utf8), descriptorCount: 0) == .go)
    }

    @Test func whatProtocolZeroCanSayRoundTrips() throws {
        for message in CodecSamples.messages {
            guard let text = LegacyVerbs.encode(message) else {
                // Only the chunked hand-off has no one-datagram text form.
                let chunked: [MasterWorkerMessage] = [.config([]), .files(ConfigFiles.Bundle()), .runtimeState(RuntimeStateRecord()), .runtimeStateRequest, .listenerBatch([])]
                #expect(chunked.map(\.verb).contains(message.verb))
                continue
            }
            let fds = CodecSamples.fakeDescriptors(for: message)
            #expect(try CodecSamples.decode([Array(text.utf8)], descriptors: fds, version: MasterWorkerProtocol.legacy).get()?.message == message)
        }
        #expect(LegacyVerbs.encode(.cli) == "CLI")
        #expect(LegacyVerbs.encode(.stop) == "STOP")
        #expect(LegacyVerbs.encode(.adopt(frontend: "fe")) == "ADOPT fe")
    }

    @Test func malformedTextIsAnError() {
        let samples: [(String, Int)] = [("HANDOVER fe", 0), ("HANDOVER", 1), ("READY x", 0), ("ACK -1", 0), ("CLI", 0),
                                        ("GO now", 0), ("HELLO", 0), ("", 0), ("ready 1", 0)]
        for (text, count) in samples {
            #expect(throws: WireError.self, "\(text)") { try LegacyVerbs.decode(Array(text.utf8), descriptorCount: count) }
        }
        #expect(throws: WireError.self) { try LegacyVerbs.decode([0xFF, 0xFE], descriptorCount: 0) }
    }

    @Test func aFrameIsNeverReadAsText() {
        #expect(throws: WireError.self) { try LegacyVerbs.decode(MasterWorkerCodec.encode(.cli)[0], descriptorCount: 1) }
    }
}
