import Shared
import Synchronization
import Testing

/// The stick table store and HAProxy's frequency counters, with a clock the tests move.
@Suite struct StickTableStoreTests {
    final class TestClock: Sendable {
        let ms = Atomic<Int64>(1_000_000)
        func advance(_ d: Int64) { ms.add(d, ordering: .relaxed) }
        var now: Int64 { ms.load(ordering: .relaxed) }
    }

    static func table(_ config: String, clock: TestClock) throws -> StickTable {
        let result = parse("backend t\n  " + config + "\n")
        #expect(alerts(result).isEmpty, "\(alerts(result))")
        let definition = try #require(result.configuration.proxies.first?.stickTable)
        return StickTable(definition, clock: { clock.now })
    }

    @Test func frequencyCounterSlidesOverThePeriod() {
        var tick = FrequencyCounter.unset, current: Int64 = 0, previous: Int64 = 0
        let period: Int64 = 10_000
        for _ in 0..<10 { FrequencyCounter.add(1, now: 0, period: period, tick: &tick, current: &current, previous: &previous) }
        #expect(FrequencyCounter.read(now: 0, period: period, tick: tick, current: current, previous: previous) == 10)
        // Half way into the next period, half of the previous one still counts.
        #expect(FrequencyCounter.read(now: 15_000, period: period, tick: tick, current: current, previous: previous) == 5)
        FrequencyCounter.add(2, now: 15_000, period: period, tick: &tick, current: &current, previous: &previous)
        #expect(FrequencyCounter.read(now: 15_000, period: period, tick: tick, current: current, previous: previous) == 7)
        // Two whole periods later nothing is left.
        #expect(FrequencyCounter.read(now: 40_000, period: period, tick: tick, current: current, previous: previous) == 0)
        FrequencyCounter.add(1, now: 40_000, period: period, tick: &tick, current: &current, previous: &previous)
        #expect(FrequencyCounter.read(now: 40_000, period: period, tick: tick, current: current, previous: previous) == 1)
    }

    @Test func entriesExpireAfterTheirLastUpdateUnlessTracked() throws {
        let clock = TestClock()
        let table = try Self.table("stick-table type ip size 10 expire 10s store conn_cnt", clock: clock)
        let a = StickKey.integer(1), b = StickKey.integer(2)
        let (slotA, _) = table.withStorage { s in (s.findOrCreate(a, now: clock.now)!, s.findOrCreate(b, now: clock.now)!) }
        table.withStorage { s in s.retain(slotA) }
        clock.advance(10_001)
        #expect(table.withStorage { s in s.purge(now: clock.now, limit: 100) } == 1)
        #expect(table.withStorage { s in s.find(b, now: clock.now) } == nil)
        // The tracked entry outlives its date, and starts again when let go.
        #expect(table.withStorage { s in s.find(a, now: clock.now) } == slotA)
        table.withStorage { s in s.release(slotA, now: clock.now) }
        clock.advance(9_000)
        #expect(table.withStorage { s in s.purge(now: clock.now, limit: 100) } == 0)
        #expect(table.used == 1)
    }

    @Test func aFullTableEvictsTheLeastRecentlyUpdatedUnlessNoPurge() throws {
        let clock = TestClock()
        let table = try Self.table("stick-table type integer size 3 expire 1m", clock: clock)
        for i in 1...3 {
            table.withStorage { s in _ = s.findOrCreate(.integer(Int64(i)), now: clock.now) }
            clock.advance(1)
        }
        // 1 is touched, so 2 is now the oldest.
        table.withStorage { s in s.touch(s.find(.integer(1), now: clock.now)!, now: clock.now) }
        table.withStorage { s in _ = s.findOrCreate(.integer(4), now: clock.now) }
        #expect(table.used == 3)
        #expect(table.withStorage { s in s.find(.integer(2), now: clock.now) } == nil)
        #expect(table.withStorage { s in s.find(.integer(1), now: clock.now) } != nil)

        let fixed = try Self.table("stick-table type integer size 2 expire 1m nopurge", clock: clock)
        let made = fixed.withStorage { s in (1...3).map { s.findOrCreate(.integer(Int64($0)), now: clock.now) != nil } }
        #expect(made == [true, true, false])
    }

    @Test func trackersCountConnectionsRequestsAndStatuses() throws {
        let clock = TestClock()
        let table = try Self.table("stick-table type ip size 10 expire 30s store conn_cur,conn_cnt,http_req_cnt,http_req_rate(10s),http_err_cnt,http_fail_cnt,bytes_in_cnt,sess_cnt", clock: clock)
        let counters = StickCounters()
        counters.track(0, key: .integer(7), in: table, level: .session, countsRequest: false)
        counters.countSession()
        counters.track(1, key: .integer(7), in: table, level: .stream, countsRequest: true)
        counters.countHTTPRequest()
        counters.countStatus(404)
        counters.countStatus(503)
        counters.countStatus(501)
        counters.countBytes(in: 100, out: 5)
        let now = clock.now
        func value(_ kind: StickDataKind) -> Int64? {
            table.withStorage { s in s.value(s.find(.integer(7), now: now)!, kind, now: now) }
        }
        #expect(value(.connCur) == 2)
        #expect(value(.connCnt) == 2)
        #expect(value(.sessCnt) == 1)
        // One request counted by the stream's tracking, one per counter by the new request.
        #expect(value(.httpReqCnt) == 3)
        #expect(value(.httpReqRate) == 3)
        #expect(value(.httpErrCnt) == 2)
        #expect(value(.httpFailCnt) == 2)
        #expect(value(.bytesInCnt) == 200)
        counters.endStream()
        #expect(value(.connCur) == 1)
        counters.endSession()
        #expect(value(.connCur) == 0)
        #expect(counters.isEmpty)
        #expect(table.withStorage { s in s.references(s.find(.integer(7), now: now)!) } == 0)
    }

    @Test func keysFollowTheTableType() {
        #expect(StickKey(.string("abcdefghij"), type: .string(length: 4)) == .bytes(Array("abcd".utf8)))
        #expect(StickKey(.string("ab"), type: .binary(length: 4)) == .bytes([0x61, 0x62, 0, 0]))
        #expect(StickKey(.string("10.0.0.1"), type: .ipv4) == .integer(0x0a00_0001))
        #expect(StickKey(.int(5), type: .integer) == .integer(5))
        #expect(StickKey(text: "-1", type: .integer) == nil)
        #expect(StickKey(text: "6162", type: .binary(length: 3))?.text(.binary(length: 3)) == "616200")
        #expect(StickKey(text: "::1", type: .ipv6)?.text(.ipv6) == "::1")
    }
}
