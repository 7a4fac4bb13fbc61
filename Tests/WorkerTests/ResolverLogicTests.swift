import Shared
import Testing
@testable import Worker

/// DNS answers as a name server sends them, built byte by byte for the decoder's tests.
enum DNSPacket {
    static func name(_ text: String) -> [UInt8] {
        var bytes: [UInt8] = []
        for label in text.split(separator: ".") {
            bytes.append(UInt8(label.utf8.count))
            bytes += Array(label.utf8)
        }
        return bytes + [0]
    }

    static func u16(_ v: Int) -> [UInt8] { [UInt8(v >> 8 & 0xff), UInt8(v & 0xff)] }

    struct Record {
        var owner: [UInt8]
        var type: Int
        var data: [UInt8]
    }

    /// The question's name sits at offset 12: `pointer` names it by a compression pointer.
    static let pointer: [UInt8] = [0xc0, 0x0c]

    static func response(_ question: String, type: Int, answers: [Record], rcode: Int = 0) -> [UInt8] {
        var bytes = u16(0x1234) + u16(0x8180 | rcode) + u16(1) + u16(answers.count) + u16(0) + u16(0)
        bytes += name(question) + u16(type) + u16(1)
        for record in answers {
            bytes += record.owner + u16(record.type) + u16(1) + [0, 0, 0, 60] + u16(record.data.count) + record.data
        }
        return bytes
    }

    static func a(_ question: String, _ addresses: [[UInt8]]) -> [UInt8] {
        response(question, type: 1, answers: addresses.map { Record(owner: pointer, type: 1, data: $0) })
    }

    static func srv(_ question: String, _ records: [(String, Int, Int)]) -> [UInt8] {
        response(question, type: 33, answers: records.map { target, port, weight in
            Record(owner: pointer, type: 33, data: u16(0) + u16(weight) + u16(port) + name(target))
        })
    }
}

@Suite struct DNSReplyTests {
    func decode(_ bytes: [UInt8], _ type: DNSQueryType) -> DNSReply {
        bytes.withUnsafeBufferPointer { DNSReply.decode($0.baseAddress!, length: $0.count, type: type) }
    }

    @Test func addressesCNAMEsAndServices() {
        #expect(decode(DNSPacket.a("app.test", [[10, 0, 0, 1], [10, 0, 0, 2]]), .a) == .addresses(["10.0.0.1", "10.0.0.2"], viaCNAME: false))
        let aaaa = DNSPacket.response("app.test", type: 28, answers: [.init(owner: DNSPacket.pointer, type: 28, data: [0x20, 0x01, 0x0d, 0xb8] + [UInt8](repeating: 0, count: 11) + [1])])
        #expect(decode(aaaa, .aaaa) == .addresses(["2001:db8::1"], viaCNAME: false))
        // www.test is a CNAME of app.test (written after the question, at offset 26).
        let cname = DNSPacket.response("www.test", type: 1, answers: [
            .init(owner: DNSPacket.pointer, type: 5, data: DNSPacket.name("app.test")),
            .init(owner: DNSPacket.name("app.test"), type: 1, data: [10, 0, 0, 3]),
        ])
        #expect(decode(cname, .a) == .addresses(["10.0.0.3"], viaCNAME: true))
        let dangling = DNSPacket.response("www.test", type: 1, answers: [.init(owner: DNSPacket.pointer, type: 5, data: DNSPacket.name("app.test"))])
        #expect(decode(dangling, .a) == .cnameError)
        #expect(decode(DNSPacket.srv("_http._tcp.svc.test", [("a.test", 8081, 100), ("b.test", 8082, 1000)]), .srv)
            == .services([ServiceRecord(target: "a.test", port: 8081, weight: 100, priority: 0),
                          ServiceRecord(target: "b.test", port: 8082, weight: 1000, priority: 0)]))
        #expect(ServiceRecord(target: "", port: 0, weight: 0, priority: 0).serverWeight == 0)
        #expect(ServiceRecord(target: "", port: 0, weight: 1, priority: 0).serverWeight == 1)
        #expect(ServiceRecord(target: "", port: 0, weight: 65535, priority: 0).serverWeight == 256)
    }

    @Test func brokenAnswersDecodeAsInvalid() {
        let good = DNSPacket.a("app.test", [[10, 0, 0, 1]])
        #expect(decode(Array(good.prefix(20)), .a) == .invalid)
        #expect(decode([0x12], .a) == .invalid)
        // An answer whose name points at itself: a compression loop.
        var loop = DNSPacket.a("app.test", [[10, 0, 0, 1]])
        let owner = 12 + DNSPacket.name("app.test").count + 4
        loop[owner] = 0xc0
        loop[owner + 1] = UInt8(owner)
        #expect(decode(loop, .a) == .invalid)
        // A question whose name points forward into itself.
        var question = good
        question[12] = 0xc0
        question[13] = 12
        #expect(decode(question, .a) == .invalid)
    }

    /// Random and mutated answers through the decoder: any outcome but a crash.
    @Test func decoderSurvivesMutatedAndRandomPackets() {
        let seeds: [([UInt8], DNSQueryType)] = [
            (DNSPacket.a("app.test", [[10, 0, 0, 1], [10, 0, 0, 2]]), .a),
            (DNSPacket.response("app.test", type: 28, answers: [.init(owner: DNSPacket.pointer, type: 28, data: [UInt8](repeating: 1, count: 16))]), .aaaa),
            (DNSPacket.srv("_http._tcp.svc.test", [("a.test", 8081, 100), ("b.test", 8082, 1000)]), .srv),
            (DNSPacket.response("www.test", type: 1, answers: [.init(owner: DNSPacket.pointer, type: 5, data: DNSPacket.name("app.test")),
                                                              .init(owner: DNSPacket.name("app.test"), type: 1, data: [10, 0, 0, 3])]), .a),
        ]
        var g = SplitMix64(seed: 0xd45)
        var decoded = 0
        for round in 0..<30_000 {
            let (seed, type) = seeds[round % seeds.count]
            var bytes = seed
            if round % 10 == 9 {
                bytes = (0..<g.below(600)).map { _ in UInt8(truncatingIfNeeded: g.next()) }
            } else {
                for _ in 0...g.below(6) {
                    switch g.below(5) {
                    case 0 where !bytes.isEmpty: bytes[g.below(bytes.count)] = UInt8(truncatingIfNeeded: g.next())
                    case 1 where !bytes.isEmpty: bytes[g.below(bytes.count)] = [0xc0, 0xc0, 0x3f, 0, 0xff][g.below(5)]
                    case 2 where !bytes.isEmpty: bytes.removeSubrange(g.below(bytes.count)..<bytes.count)
                    case 3: bytes.insert(UInt8(truncatingIfNeeded: g.next()), at: g.below(bytes.count + 1))
                    default: bytes += bytes.prefix(g.below(bytes.count + 1))
                    }
                }
            }
            guard !bytes.isEmpty else { continue }
            if case .addresses = decode(bytes, type) { decoded += 1 }
            if case .services = decode(bytes, type) { decoded += 1 }
        }
        // Some mutations leave the answer whole: the decoder did run on them.
        #expect(decoded > 100)
    }
}

@Suite struct ResolutionMachineTests {
    @Test func theFirstValidReplyWinsAndTheOthersAreOutdated() {
        var m = ResolutionMachine(kind: .address(preferIPv4: false), nowMs: 0)
        #expect(m.isDue(nowMs: 0))
        #expect(m.start(nameservers: 2) == .ask(.aaaa, generation: 1))
        #expect(!m.isDue(nowMs: 0))
        // No AAAA anywhere: A is asked next.
        #expect(m.receive(.empty, generation: 1, nameservers: 2, nowMs: 5, retryMs: 1000, validMs: 10_000) == .wait)
        #expect(m.receive(.empty, generation: 1, nameservers: 2, nowMs: 6, retryMs: 1000, validMs: 10_000) == .ask(.a, generation: 2))
        let reply = DNSReply.addresses(["10.0.0.1"], viaCNAME: false)
        #expect(m.receive(.reply(reply), generation: 2, nameservers: 2, nowMs: 7, retryMs: 1000, validMs: 10_000) == .succeeded(reply))
        #expect(m.lastValidMs == 7)
        #expect(m.receive(.reply(reply), generation: 2, nameservers: 2, nowMs: 8, retryMs: 1000, validMs: 10_000) == .outdated)
        #expect(m.receive(.nx, generation: 2, nameservers: 2, nowMs: 8, retryMs: 1000, validMs: 10_000) == .wait)
        #expect(!m.isDue(nowMs: 10_006))
        #expect(m.isDue(nowMs: 10_007))
    }

    @Test func failuresFallBackOnceThenFailWithTheMostTellingReason() {
        var m = ResolutionMachine(kind: .address(preferIPv4: true), nowMs: 0)
        #expect(m.start(nameservers: 2) == .ask(.a, generation: 1))
        #expect(m.receive(.timeout, generation: 1, nameservers: 2, nowMs: 1, retryMs: 1000, validMs: 10_000) == .wait)
        #expect(m.receive(.nx, generation: 1, nameservers: 2, nowMs: 2, retryMs: 1000, validMs: 10_000) == .ask(.aaaa, generation: 2))
        #expect(m.receive(.nx, generation: 2, nameservers: 2, nowMs: 3, retryMs: 1000, validMs: 10_000) == .wait)
        #expect(m.receive(.timeout, generation: 2, nameservers: 2, nowMs: 4, retryMs: 1000, validMs: 10_000) == .failed(.nx))
        #expect(m.lastValidMs == 0)
        #expect(m.isDue(nowMs: 1004))
        // Only silence: a timeout.
        #expect(m.start(nameservers: 1) == .ask(.a, generation: 4))
        #expect(m.receive(.timeout, generation: 4, nameservers: 1, nowMs: 1, retryMs: 1000, validMs: 10_000) == .ask(.aaaa, generation: 5))
        #expect(m.receive(.sendError, generation: 5, nameservers: 1, nowMs: 1, retryMs: 1000, validMs: 10_000) == .failed(.timeout))
        // SRV questions have no other family to try.
        var s = ResolutionMachine(kind: .service, nowMs: 0)
        #expect(s.start(nameservers: 1) == .ask(.srv, generation: 1))
        #expect(s.receive(.refused, generation: 1, nameservers: 1, nowMs: 1, retryMs: 1000, validMs: 10_000) == .failed(.refused))
        #expect(ResolutionFailure.refused.maintenanceCause == "DNS refused status")
    }

    @Test func responsesCountAsHAProxyCountsThem() {
        #expect(NameserverResponse.empty.counter == .anyErr)
        #expect(NameserverResponse.reply(.invalid).counter == .invalid)
        #expect(NameserverResponse.reply(.noRecord).counter == .other)
        #expect(NameserverResponse.reply(.cnameError).counter == .cnameError)
        #expect(NameserverResponse.reply(.addresses([], viaCNAME: false)).counter == nil)
        let counters = NameserverCounters(id: "ns1")
        counters.add(.sent, 3)
        counters.add(.outdated)
        let report = ResolversCounters(sections: [("dns", [counters])]).report()!
        #expect(report.hasPrefix("Resolvers section dns\n nameserver ns1:\n  sent:        3\n  snd_error:   0\n"))
        #expect(report.contains("\n  cname_error: 0\n"))
        #expect(report.hasSuffix("  outdated:    1\n"))
        #expect(ResolversCounters(sections: [("dns", [counters])]).report(only: "other") == nil)
        #expect(ResolversCounters(sections: []).report() == "No resolvers found\n")
    }
}

@Suite struct AddressAssignmentTests {
    @Test func serversKeepTheirAddressAndTakeDistinctOnes() {
        // The third server waits: two addresses for three servers.
        #expect(AddressAssignment.assign(current: [nil, nil, nil], allowDuplicates: [false, false, false], answer: ["a", "b"]) == ["a", "b", nil])
        // A server keeps its address wherever the answer lists it.
        #expect(AddressAssignment.assign(current: ["b", nil, "x"], allowDuplicates: [false, false, false], answer: ["a", "b", "c"]) == ["b", "a", "c"])
        // Scale-down: the one whose address went waits, the others keep theirs.
        #expect(AddressAssignment.assign(current: ["a", "b", "c"], allowDuplicates: [false, false, false], answer: ["b", "c"]) == [nil, "b", "c"])
        // `allow-dup-ip`: the first address, shared.
        #expect(AddressAssignment.assign(current: [nil, nil], allowDuplicates: [true, true], answer: ["a", "b"]) == ["a", "a"])
        #expect(AddressAssignment.assign(current: ["a", "a"], allowDuplicates: [false, false], answer: ["a", "b"]) == ["a", "b"])
    }

    @Test func familiesAndNetworksOrderTheAnswer() {
        let nets = [IPNetwork.parse("10.1.0.0/16")!]
        #expect(AddressAssignment.ordered(ipv4: ["10.0.0.1", "10.1.0.1"], ipv6: ["::1"], preferIPv4: false, nets: []) == ["::1", "10.0.0.1", "10.1.0.1"])
        #expect(AddressAssignment.ordered(ipv4: ["10.0.0.1", "10.1.0.1"], ipv6: ["::1"], preferIPv4: true, nets: nets) == ["10.1.0.1", "10.0.0.1", "::1"])
    }

    @Test func serviceSlotsFollowTheRecordsWithinHoldObsolete() {
        let a = ServiceRecord(target: "a.test", port: 81, weight: 10, priority: 0)
        let b = ServiceRecord(target: "b.test", port: 82, weight: 10, priority: 0)
        let c = ServiceRecord(target: "c.test", port: 83, weight: 10, priority: 0)
        typealias Slot = AddressAssignment.ServiceSlot
        var slots = AddressAssignment.assign(slots: [Slot(), Slot()], records: [a, b, c], nowMs: 0, obsoleteMs: 0)
        #expect(slots.map(\.record) == [a, b])
        // b goes: with `hold obsolete 5s` its slot keeps it for 5 s, then takes c.
        slots = AddressAssignment.assign(slots: slots, records: [c, a], nowMs: 1000, obsoleteMs: 5000)
        #expect(slots.map(\.record) == [a, b])
        slots = AddressAssignment.assign(slots: slots, records: [c, a], nowMs: 5000, obsoleteMs: 5000)
        #expect(slots.map(\.record) == [a, c])
        // A changed port is another record.
        var moved = c
        moved.port = 84
        slots = AddressAssignment.assign(slots: slots, records: [a, moved], nowMs: 6000, obsoleteMs: 0)
        #expect(slots.map(\.record) == [a, moved])
        #expect(AddressAssignment.assign(slots: slots, records: [], nowMs: 7000, obsoleteMs: 0).map(\.record) == [nil, nil])
    }
}
