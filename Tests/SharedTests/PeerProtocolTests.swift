import Shared
import Testing

/// HAProxy's peers protocol at the byte level: integers, frames, the handshake, table
/// definitions and updates, checked against bytes haproxy 2.6 sent and accepted.
@Suite struct PeerProtocolTests {
    static func bytes(_ value: UInt64) -> [UInt8] {
        var out: [UInt8] = []
        PeerVarint.encode(value, into: &out)
        return out
    }

    static let integers: [(UInt64, [UInt8])] = [
        (0, [0x00]), (127, [0x7F]), (128, [0x80]), (239, [0xEF]), (240, [0xF0, 0x00]), (255, [0xFF, 0x00]),
        (256, [0xF0, 0x01]), (1000, [0xF8, 0x2F]), (2287, [0xFF, 0x7F]), (2288, [0xF0, 0x80, 0x00]), (5000, [0xF8, 0xA9, 0x01]),
        (10000, [0xF0, 0xE2, 0x03]), (60000, [0xF0, 0x97, 0x1C]), (100_000, [0xF0, 0xDB, 0x2F]), (264_432, [0xF0, 0x80, 0x80, 0x00]),
        (300_000, [0xF0, 0xAF, 0x91, 0x00]), (0xFFFF_FFFF, [0xFF, 0xF0, 0xFE, 0xFE, 0x7E]),
        (UInt64.max, [0xFF, 0xF0, 0xFE, 0xFE, 0xFE, 0xFE, 0xFE, 0xFE, 0xFE, 0x0E]),
    ]

    @Test(arguments: PeerProtocolTests.integers)
    func integersEncodeAsHAProxyDoes(value: UInt64, expected: [UInt8]) {
        #expect(Self.bytes(value) == expected)
        var at = 0
        #expect(PeerVarint.decode(expected, at: &at) == value)
        #expect(at == expected.count)
        // Cut short, an integer is not read.
        var cut = 0
        if expected.count > 1 { #expect(PeerVarint.decode(Array(expected.dropLast()), at: &cut) == nil) }
    }

    @Test func framesAreCutWhateverTheReadsAndLimitsHold() throws {
        var reader = PeerFrameReader()
        reader.append([0x00, 0x04, 0x0A])
        #expect(try reader.next() == PeerFrame(0, 4))
        #expect(try reader.next() == nil)
        reader.append([0x84, 0x05, 0x01, 0x00])
        #expect(try reader.next() == nil)
        reader.append([0x00, 0x00, 0x03, 0x00, 0x01])
        #expect(try reader.next() == PeerFrame(10, 0x84, [0x01, 0x00, 0x00, 0x00, 0x03]))
        #expect(try reader.next() == PeerFrame(0, 1))

        var reserved = PeerFrameReader()
        reserved.append([0xFF, 0x00])
        #expect(throws: PeerFrameReader.Failure.protocolError) { try reserved.next() }

        var huge = PeerFrameReader(maxPayload: 16384)
        huge.append([0x0A, 0x80, 0xF0, 0xFF, 0xFF, 0x07])
        #expect(throws: PeerFrameReader.Failure.self) { try huge.next() }

        // A length longer than five bytes.
        var endless = PeerFrameReader()
        endless.append([0x0A, 0x80, 0xF0, 0x80, 0x80, 0x80, 0x80, 0x80])
        #expect(throws: PeerFrameReader.Failure.protocolError) { try endless.next() }

        var lines = PeerFrameReader()
        lines.append(Array("200\r\n".utf8) + [0x00, 0x04])
        #expect(try lines.line() == "200")
        #expect(try lines.next() == PeerFrame(0, 4))
    }

    @Test func handshakesAreCheckedInHAProxysOrder() {
        func status(_ lines: [String]) -> Int {
            switch PeerHandshake.check(lines, localName: "me", knownPeers: ["you"]) {
            case .success(let name): return name == nil ? 100 : 200
            case .failure(let error): return error.status.rawValue
            }
        }
        #expect(status(["HAProxyS 2.1", "me", "you 42 1"]) == 200)
        #expect(status(["HAProxyS 2.01", "me", "you 42 1"]) == 200)
        #expect(status(["HAProxyS 2.0", "me", "you x"]) == 200)
        #expect(status(["HAProxyX 2.1", "me", "you 42 1"]) == 501)
        #expect(status(["HAProxyS 2.2", "me", "you 42 1"]) == 502)
        #expect(status(["HAProxyS 3.0", "me", "you 42 1"]) == 502)
        #expect(status(["HAProxyS 2.", "me", "you 42 1"]) == 502)
        #expect(status(["HAProxyS 2.1", "him", "you 42 1"]) == 503)
        #expect(status(["HAProxyS 2.1", "me", "them 42 1"]) == 504)
        #expect(status(["HAProxyS 2.1", "me", "you"]) == 501)
        // A bad line is answered before the next ones arrive.
        #expect(status(["HAProxyX 2.1"]) == 501)
        #expect(status(["HAProxyS 2.1", "him"]) == 503)
        #expect(status(["HAProxyS 2.1", "me"]) == 100)
        #expect(PeerHandshake.hello(remote: "you", local: "me", pid: 7) == Array("HAProxyS 2.1\nyou\nme 7 1\n".utf8))
    }

    static func peersTable(_ line: String) throws -> StickTableDefinition {
        let result = parse("global\n  localpeer me\npeers p\n  peer me 127.0.0.1:1\n  table t " + line + "\n")
        #expect(alerts(result).isEmpty, "\(alerts(result))")
        return try #require(result.configuration.peers["p"]?.tables.first)
    }

    @Test func definitionsAreTheBytesHAProxySends() throws {
        let ip = try Self.peersTable("type ip size 1k expire 60s store http_req_rate(10s),gpc0,conn_cnt")
        let definition = PeerTableDefinition(ip, id: 1, name: "/t")
        let captured: [UInt8] = [0x01, 0x02, 0x2F, 0x74, 0x04, 0x04, 0xF4, 0x32, 0xF0, 0x97, 0x1C, 0x0A, 0xF0, 0xE2, 0x03]
        #expect(definition.payload == captured)
        #expect(PeerTableDefinition(payload: captured) == definition)
        #expect(definition.matches(ip, name: "/t"))
        #expect(!definition.matches(ip, name: "/u"))

        let string = try Self.peersTable("type string len 20 size 1k expire 30s store gpc(2),gpc_rate(2,5s),gpt(3),conn_cur,server_id,bytes_in_cnt,server_key")
        let arrays: [UInt8] = [0x01, 0x03, 0x2F, 0x74, 0x32, 0x06, 0x15, 0xF1, 0xF5, 0x82, 0x71, 0xF0, 0xC4, 0x0D,
                               0x16, 0x03, 0x17, 0x02, 0x18, 0x02, 0xF8, 0xA9, 0x01]
        #expect(PeerTableDefinition(string, id: 1, name: "/t2").payload == arrays)
        let read = try #require(PeerTableDefinition(payload: arrays))
        #expect(read.arraySizes == [22: 3, 23: 2, 24: 2])
        #expect(read.keyLength == 21)
        // The default string length leaves room for the NUL in HAProxy's 32 bytes.
        #expect(PeerTableDefinition.wireKey(try Self.peersTable("type string size 1").keyType) == (6, 32))

        // Cut in its identity, a definition is refused; cut in its parameters, it is ignored
        // (HAProxy's answers); very old senders stop after the data types.
        for end in 1..<8 { #expect(PeerTableDefinition(payload: Array(captured.prefix(end))) == nil, "\(end)") }
        #expect(PeerTableDefinition(payload: Array(captured.prefix(8)))?.isUsable == true)
        for end in 9..<captured.count { #expect(PeerTableDefinition(payload: Array(captured.prefix(end)))?.isUsable == false, "\(end)") }
        #expect(PeerTableDefinition(payload: Array(arrays.prefix(14)))?.isUsable == false)
    }

    @Test func updatesAreReadAsHAProxyWritesThem() throws {
        let definition = try Self.peersTable("type ip size 1k expire 60s store http_req_rate(10s),gpc0,conn_cnt")
        let table = StickTable(definition, clock: { 1_000_000 })
        let remote = PeerTableDefinition(definition, id: 1, name: "/t")
        var names = PeerDictionary()
        // haproxy 2.6's update 7: 127.0.0.1, gpc0 2, conn_cnt 3, two requests 15 ms into the period.
        let payload: [UInt8] = [0x00, 0x00, 0x00, 0x07, 0x7F, 0x00, 0x00, 0x01, 0x02, 0x03, 0x0F, 0x02, 0x00]
        let id = try table.withStorage { s in
            try PeerUpdateCodec.apply(payload, type: PeerMessageCode.update, remote: remote, to: &s, keyType: .ipv4, now: 1_000_000, dictionary: &names)
        }
        #expect(id == 7)
        table.withStorage { s in
            let slot = s.find(.integer(0x7F00_0001), now: 1_000_000)!
            #expect(s.value(slot, .gpc0, now: 1_000_000) == 2)
            #expect(s.value(slot, .connCnt, now: 1_000_000) == 3)
            #expect(s.value(slot, .httpReqRate, now: 1_000_000) == 2)
            #expect(s.remaining(slot, now: 1_000_000) == 60_000)
            // Learned entries are not pushed back.
            #expect(s.localChanges(after: 0, limit: 10).isEmpty)
        }
        // Written back, the same bytes.
        var out: [UInt8] = []
        table.withStorage { s in
            PeerUpdateCodec.encode(s, slot: s.find(.integer(0x7F00_0001), now: 1_000_000)!, keyType: .ipv4, id: 7, incremental: false,
                                   timed: false, now: 1_000_000, dictionary: &names, into: &out)
        }
        #expect(out == [0x0A, 0x80, 0x0D] + payload)

        // A timed update: the time left, at most the table's delay.
        let timed: [UInt8] = [0x00, 0x00, 0x00, 0x09, 0x00, 0x00, 0xCC, 0x09, 0x0A, 0x00, 0x00, 0x01, 0x03, 0x03, 0xF6, 0xD7, 0x02, 0x03, 0x00]
        _ = try table.withStorage { s in
            try PeerUpdateCodec.apply(timed, type: PeerMessageCode.timedUpdate, remote: remote, to: &s, keyType: .ipv4, now: 1_000_000, dictionary: &names)
        }
        table.withStorage { s in
            let slot = s.find(.integer(0x0A00_0001), now: 1_000_000)!
            #expect(s.remaining(slot, now: 1_000_000) == 52_233)
        }

        // Cut short anywhere, an update changes nothing.
        for end in 0..<payload.count {
            let before = table.used
            #expect(throws: PeerUpdateCodec.Malformed.self) {
                try table.withStorage { s in
                    var other = payload
                    other[7] = 9
                    _ = try PeerUpdateCodec.apply(Array(other.prefix(end)), type: PeerMessageCode.update, remote: remote, to: &s,
                                                  keyType: .ipv4, now: 1_000_000, dictionary: &names)
                }
            }
            #expect(table.used == before)
        }
    }

    @Test func stringKeysArraysAndServerNamesTravelBothWays() throws {
        let definition = try Self.peersTable("type string len 8 size 10 expire 30s store gpc(2),gpc_rate(2,5s),gpt(3),conn_cur,server_id,server_key")
        let sender = StickTable(definition, clock: { 5_000 })
        sender.withStorage { $0.recordUpdates() }
        sender.withStorage { s in
            let slot = s.findOrCreate(.bytes(Array("session1".utf8)), now: 5_000)!
            s.add(slot, .gpc, 4, at: 1, now: 5_000)
            s.add(slot, .gpcRate, 3, at: 0, now: 4_000)
            s.set(slot, .gpt, 9, at: 2, now: 5_000)
            s.add(slot, .connCur, 1, now: 5_000)
            s.set(slot, .serverID, 2, now: 5_000)
            s.setServerKey(slot, "web2")
        }
        let remote = PeerTableDefinition(definition, id: 3, name: "/t")
        var sent = PeerDictionary(), received = PeerDictionary()
        var frames: [UInt8] = []
        let changes = sender.withStorage { s in s.localChanges(after: 0, limit: 10) }
        #expect(changes.count == 1)
        for _ in 0..<2 {
            sender.withStorage { s in
                PeerUpdateCodec.encode(s, slot: changes[0].slot, keyType: definition.keyType, id: 1, incremental: false, timed: true,
                                       now: 5_000, dictionary: &sent, into: &frames)
            }
        }
        var reader = PeerFrameReader()
        reader.append(frames)
        let receiver = StickTable(definition, clock: { 5_000 })
        var count = 0
        while let frame = try reader.next() {
            count += 1
            _ = try receiver.withStorage { s in
                try PeerUpdateCodec.apply(frame.payload, type: frame.type, remote: remote, to: &s, keyType: definition.keyType,
                                          now: 5_000, dictionary: &received)
            }
        }
        #expect(count == 2)
        // The second update named the server by its id only.
        #expect(frames.count < 2 * 40)
        receiver.withStorage { s in
            let slot = s.find(.bytes(Array("session1".utf8)), now: 5_000)!
            #expect(s.value(slot, .gpc, at: 1, now: 5_000) == 4)
            #expect(s.value(slot, .gpcRate, at: 0, now: 5_000) == 3)
            #expect(s.value(slot, .gpt, at: 2, now: 5_000) == 9)
            #expect(s.value(slot, .connCur, now: 5_000) == 0)
            #expect(s.value(slot, .serverID, now: 5_000) == 2)
            #expect(s.serverKey(slot) == "web2")
            #expect(s.remaining(slot, now: 5_000) == 30_000)
        }
    }

    @Test func theUpdateLogSendsEachChangedEntryOnce() throws {
        let definition = try Self.peersTable("type integer size 4 expire 30s store gpc0")
        let table = StickTable(definition, clock: { 0 })
        table.withStorage { $0.recordUpdates() }
        table.withStorage { s in
            let a = s.findOrCreate(.integer(1), now: 0)!
            let b = s.findOrCreate(.integer(2), now: 0)!
            s.add(a, .gpc0, 1, now: 0)
            s.add(a, .gpc0, 1, now: 0)
            // Unread changes of one entry merge; a read one is not reopened.
            #expect(s.localChanges(after: 0, limit: 10).map(\.slot) == [b, a])
            s.add(a, .gpc0, 1, now: 0)
            let next = s.localChanges(after: s.lastLocalChange - 1, limit: 10)
            #expect(next.map(\.slot) == [a])
            #expect(s.localChanges(after: s.lastLocalChange, limit: 10).isEmpty)
            // A batch limit leaves the rest for the next turn.
            #expect(s.localChanges(after: 0, limit: 1).map(\.slot) == [b])
        }
        // Many changes stay bounded by the entries, not by the changes.
        table.withStorage { s in
            for n in 0..<100_000 { s.add(s.findOrCreate(.integer(Int64(n % 3)), now: 0)!, .gpc0, 1, now: 0); _ = s.localChanges(after: s.lastLocalChange - 1, limit: 1) }
            #expect(s.localChanges(after: 0, limit: 100).count == 3)
        }
    }

    @Test func learnedValuesReplaceAPendingLocalChangeAndHandedOverEntriesAreNotNews() throws {
        let definition = try Self.peersTable("type ip size 10 expire 60s store http_req_rate(10s),gpc0,conn_cnt")
        let table = StickTable(definition, clock: { 1_000_000 })
        table.withStorage { $0.recordUpdates() }
        _ = table.withStorage { s in s.add(s.findOrCreate(.integer(0x7F00_0001), now: 1_000_000)!, .gpc0, 5, now: 1_000_000) }
        var names = PeerDictionary()
        let payload: [UInt8] = [0x00, 0x00, 0x00, 0x07, 0x7F, 0x00, 0x00, 0x01, 0x02, 0x03, 0x0F, 0x02, 0x00]
        _ = try table.withStorage { s in
            try PeerUpdateCodec.apply(payload, type: PeerMessageCode.update, remote: PeerTableDefinition(definition, id: 1, name: "/t"),
                                      to: &s, keyType: .ipv4, now: 1_000_000, dictionary: &names)
        }
        // The peer's values are the entry's now: nothing to send back.
        table.withStorage { s in
            #expect(s.localChanges(after: 0, limit: 10).isEmpty)
            #expect(s.value(s.find(.integer(0x7F00_0001), now: 1_000_000)!, .gpc0, now: 1_000_000) == 2)
        }
        // A refreshed entry (a stick match) is news again.
        table.withStorage { s in s.touch(s.find(.integer(0x7F00_0001), now: 1_000_000)!, now: 1_000_000) }
        #expect(table.withStorage { $0.localChanges(after: 0, limit: 10).count } == 1)

        // Entries handed over at a reload are loaded without being pushed again.
        let next = StickTable(definition, clock: { 1_000_000 })
        next.withStorage { $0.recordUpdates() }
        #expect(next.load(table.snapshot()) == nil)
        #expect(next.used == 1)
        #expect(next.withStorage { $0.localChanges(after: 0, limit: 10).isEmpty })
    }

    @Test func ratesFromPeersCannotOverflowAReading() {
        let huge: Int64 = 4_294_967_295
        #expect(FrequencyCounter.read(now: 10, period: 3_000_000_000, tick: 0, current: huge, previous: huge) > huge)
        #expect(FrequencyCounter.read(now: 3_000_000_010, period: 3_000_000_000, tick: 0, current: huge, previous: huge) > 0)
        // Integer keys are HAProxy's 32-bit ones, whatever the sample.
        #expect(StickKey(.int(-1), type: .integer) == .integer(4_294_967_295))
        #expect(StickKey(.int(1 << 32 | 7), type: .integer) == .integer(7))
    }

    @Test func theLocalPeerIsNamedAsInHAProxy() {
        let noPeer = parse("global\n  localpeer nodeC\npeers p\n  peer nodeA 127.0.0.1:1\n  peer nodeB 127.0.0.1:2\n")
        #expect(warnings(noPeer).contains("config : Removing incomplete section 'peers p' (no peer named 'nodeC')."))
        let late = parse("peers p\n  peer nodeA 127.0.0.1:1\nglobal\n  localpeer nodeA\n")
        #expect(warnings(late).contains { $0.hasSuffix("'localpeer' ignored since it is used after 'peers' section.") })
        let option = ConfigParser.parse([.init(name: "c.cfg", text: "global\n  localpeer x\npeers p\n  peer nodeB 127.0.0.1:2\n")], localPeer: "nodeB")
        #expect(warnings(option) == ["config : parsing [c.cfg:2] : 'localpeer' ignored since it is already set by using the '-L' command line argument."])
        #expect(option.configuration.peers["p"]?.isActive == true)
        #expect(alerts(parse("global\n  localpeer\n")).first?.hasSuffix("'localpeer' expects a name as an argument.") == true)
        #expect(alerts(parse("global\n  localpeer a\npeers p\n  peer a 127.0.0.1:1\n  peer a 127.0.0.1:2\n")).first?
            .hasSuffix("'peer a' : local peer name already referenced at t.cfg:4. a") == true)
        #expect(alerts(parse("global\n  localpeer a\npeers p\n  bind 127.0.0.1:1\n  peer a 127.0.0.1:1\n")).first?
            .hasSuffix("mixing \"peer\" and \"bind\" line is forbidden") == true)
        #expect(alerts(parse("global\n  localpeer a\npeers p\n  bind 127.0.0.1:1\n  server a 127.0.0.1:1\n")).first ==
            "config : [t.cfg:5] : 'server p/a' : unknown keyword '127.0.0.1:1'. Hint: no address was expected for this server.")
        let servers = parse("global\n  localpeer a\npeers p\n  bind 127.0.0.1:7\n  server a\n  server b 127.0.0.1:8\n")
        #expect(alerts(servers).isEmpty)
        #expect(servers.configuration.peersListeners.map(\.address.description) == ["127.0.0.1:7"])
    }
}
