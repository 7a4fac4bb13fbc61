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

    @Test func snapshotsCarryEntriesToTheNextTableAndConvertChangedData() throws {
        let clock = TestClock()
        let old = try Self.table("stick-table type string len 8 size 10 expire 10s store gpc0,http_req_rate(10s),conn_cur,conn_cnt", clock: clock)
        old.withStorage { s in
            for (i, name) in ["ann", "bob", "cid"].enumerated() {
                let slot = s.findOrCreate(StickKey.bytes(Array(name.utf8) + [UInt8](repeating: 0, count: 8 - name.count)), now: clock.now)!
                s.set(slot, .gpc0, Int64(i + 1), now: clock.now)
                s.add(slot, .httpReqRate, 4, now: clock.now)
                s.set(slot, .connCur, 2, now: clock.now)
            }
        }
        clock.advance(3_000)
        var snapshot = old.snapshot(batch: 2)
        #expect(snapshot.entries.count == 3)
        // Through the wire, inside a runtime state record, next to a fact of a later kind.
        var w = WireWriter()
        RuntimeStateRecord(entries: [.deleted(backend: "b", server: "s")], tables: [snapshot]).encode(into: &w)
        var r = WireReader(w.bytes)
        let record = try RuntimeStateRecord(from: &r)
        #expect(record.tables == [snapshot] && record.entries.count == 1)
        snapshot = record.tables[0]

        // The new definition drops conn_cnt, adds gpc1, and keeps a shorter expiry.
        let new = try Self.table("stick-table type string len 8 size 2 expire 5s store gpc0,gpc1,http_req_rate(10s),conn_cur", clock: clock)
        #expect(new.load(snapshot) == nil)
        let now = clock.now
        let rows = new.withStorage { s in
            s.slots().map { slot in
                (s.key(slot).text(.string(length: 8)), s.value(slot, .gpc0, now: now)!, s.value(slot, .gpc1, now: now)!,
                 s.value(slot, .httpReqRate, now: now)!, s.value(slot, .connCur, now: now)!, s.remaining(slot, now: now))
            }.sorted { $0.0 < $1.0 }
        }
        // Size 2: the entries expiring last stay; the counters and the rate's window are intact;
        // conn_cur restarts (the connections stayed with the old worker).
        #expect(rows.count == 2)
        for row in rows {
            #expect(row.2 == 0 && row.3 == 4 && row.4 == 0 && row.5 <= 5_000 && row.5 > 0, "\(row)")
            #expect(row.1 == (row.0 == "bob" ? 2 : 3), "\(row)")
        }
        // Another key type cannot be converted.
        let other = try Self.table("stick-table type ip size 10 expire 10s store gpc0", clock: clock)
        #expect(other.load(snapshot) == "Stick table 't' starts empty: its key type changed from 'string len 8' to 'ip'.")
        #expect(other.used == 0)
    }
}
