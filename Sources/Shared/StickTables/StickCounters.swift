/// One tracked entry (`track-scN`): the table, the entry's slot (kept alive by the reference
/// the tracker holds) and its key.
public struct StickTracker: Sendable {
    public let table: StickTable
    public let slot: Int32
    public let key: StickKey
}

/// The stick counters of a client connection: per counter number, the entry tracked for the
/// whole connection (`tcp-request connection|session`) and the one tracked for the current
/// stream (`tcp-request content`, `http-request`, `http-response`), which ends with each
/// HTTP request. Fetches read the stream's tracker first, as HAProxy does. Touched only by
/// the connection's event loop; the tables themselves are shared.
public final class StickCounters {
    public enum Level: Sendable { case session, stream }

    /// `tune.stick-counters`: how many counters a stream has (HAProxy's default, 3).
    public static let defaultCount = 3

    private var session: [StickTracker?]
    private var stream: [StickTracker?]

    public init(count: Int = StickCounters.defaultCount) {
        session = Array(repeating: nil, count: count)
        stream = Array(repeating: nil, count: count)
    }

    public var count: Int { session.count }

    /// The entry counter `number` reads (the stream's, else the connection's).
    public func tracker(_ number: Int) -> StickTracker? {
        guard number >= 0, number < stream.count else { return nil }
        return stream[number] ?? session[number]
    }

    public func isTracking(_ number: Int, _ level: Level) -> Bool {
        guard number >= 0, number < stream.count else { return true }
        return (level == .session ? session[number] : stream[number]) != nil
    }

    /// `track-scN <key> [table <t>]`: the entry is created if needed and counts a connection
    /// (`conn_cnt`, `conn_cur`, `conn_rate`); tracked by an HTTP rule, it also counts the
    /// request (`http_req_cnt`, `http_req_rate`). Nothing happens when the counter already
    /// tracks something at this level, or when the table is full.
    public func track(_ number: Int, key: StickKey, in table: StickTable, level: Level, countsRequest: Bool) {
        guard !isTracking(number, level) else { return }
        let now = table.now
        let slot: Int32? = table.withStorage { (s: inout StickTableStorage) -> Int32? in
            guard let slot = s.findOrCreate(key, now: now) else { return nil }
            s.retain(slot)
            s.add(slot, .connCur, 1, now: now)
            s.add(slot, .connCnt, 1, now: now)
            s.add(slot, .connRate, 1, now: now)
            if countsRequest {
                s.add(slot, .httpReqCnt, 1, now: now)
                s.add(slot, .httpReqRate, 1, now: now)
            }
            s.touch(slot, now: now)
            return slot
        }
        guard let slot else { return }
        let tracker = StickTracker(table: table, slot: slot, key: key)
        if level == .session { session[number] = tracker } else { stream[number] = tracker }
    }

    /// The connection passed its `tcp-request session` rules: `sess_cnt`, `sess_rate`.
    public func countSession() {
        for case let tracker? in session {
            update(tracker) { s, slot, now in
                s.add(slot, .sessCnt, 1, now: now)
                s.add(slot, .sessRate, 1, now: now)
            }
        }
    }

    /// A new HTTP request on the connection (before its `http-request` rules).
    public func countHTTPRequest() {
        forEachCounted { s, slot, now in
            s.add(slot, .httpReqCnt, 1, now: now)
            s.add(slot, .httpReqRate, 1, now: now)
        }
    }

    /// A request ended with `status`: 4xx statuses count as client errors (`http_err_*`),
    /// 5xx other than 501 and 505 as server failures (`http_fail_*`).
    public func countStatus(_ status: Int) {
        if (400..<500).contains(status) {
            forEachCounted { s, slot, now in
                s.add(slot, .httpErrCnt, 1, now: now)
                s.add(slot, .httpErrRate, 1, now: now)
            }
        } else if (500..<600).contains(status), status != 501, status != 505 {
            forEachCounted { s, slot, now in
                s.add(slot, .httpFailCnt, 1, now: now)
                s.add(slot, .httpFailRate, 1, now: now)
            }
        }
    }

    /// Bytes that went from the client to servers (`bytesIn`) and back.
    public func countBytes(in bytesIn: Int64, out bytesOut: Int64) {
        guard bytesIn > 0 || bytesOut > 0 else { return }
        forEachCounted { s, slot, now in
            if bytesIn > 0 {
                s.add(slot, .bytesInCnt, bytesIn, now: now)
                s.add(slot, .bytesInRate, bytesIn, now: now)
            }
            if bytesOut > 0 {
                s.add(slot, .bytesOutCnt, bytesOut, now: now)
                s.add(slot, .bytesOutRate, bytesOut, now: now)
            }
        }
    }

    /// The stream ended: its trackers let their entries go (`conn_cur` decreases).
    public func endStream() {
        for number in stream.indices {
            guard let tracker = stream[number] else { continue }
            stream[number] = nil
            Self.stop(tracker)
        }
    }

    /// The connection closed: every tracker lets its entry go.
    public func endSession() {
        endStream()
        for number in session.indices {
            guard let tracker = session[number] else { continue }
            session[number] = nil
            Self.stop(tracker)
        }
    }

    public var isEmpty: Bool { !session.contains { $0 != nil } && !stream.contains { $0 != nil } }

    private static func stop(_ tracker: StickTracker) {
        let now = tracker.table.now
        tracker.table.withStorage { s in
            s.add(tracker.slot, .connCur, -1, now: now)
            s.release(tracker.slot, now: now)
        }
    }

    /// Each counter's entry, once: the stream's tracker, else the connection's.
    private func forEachCounted(_ body: (inout StickTableStorage, Int32, Int64) -> Void) {
        for number in stream.indices {
            guard let tracker = stream[number] ?? session[number] else { continue }
            update(tracker, body)
        }
    }

    private func update(_ tracker: StickTracker, _ body: (inout StickTableStorage, Int32, Int64) -> Void) {
        let now = tracker.table.now
        tracker.table.withStorage { s in
            body(&s, tracker.slot, now)
            s.touch(tracker.slot, now: now)
        }
    }
}
