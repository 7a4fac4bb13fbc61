/// HAProxy's frequency counter over a period: the events of the current period plus the
/// previous period's count weighted by the part of it still inside a sliding window. Stored
/// as three integers in a table's row (`tick`, `current`, `previous`); these functions are
/// the arithmetic, given the time in milliseconds.
public enum FrequencyCounter {
    /// A counter never updated has no period yet.
    public static let unset = Int64.min

    /// Counts `amount` events at `now`.
    public static func add(_ amount: Int64, now: Int64, period: Int64,
                           tick: inout Int64, current: inout Int64, previous: inout Int64) {
        if tick != unset, now - tick < period {
            current &+= amount
            return
        }
        // A new period begins: the current count becomes the previous one, unless a whole
        // period went by without an event.
        if tick == unset {
            previous = 0
            tick = now
        } else {
            previous = current
            tick += period
            if now - tick >= period {
                previous = 0
                tick = now
            }
        }
        current = amount
    }

    /// The events over the last `period` at `now`.
    public static func read(now: Int64, period: Int64, tick: Int64, current: Int64, previous: Int64) -> Int64 {
        guard tick != unset, period > 0 else { return 0 }
        var past = previous
        var curr = current
        var remain = tick + period - now
        if remain < 0 {
            // Past the current period: part of it may still count as the previous one.
            remain += period
            past = remain >= 0 ? curr : 0
            curr = 0
        }
        // At very low rates, report the previous count rather than a value flapping
        // between 0 and 1.
        if curr == 0, past <= 1 { return past }
        // Counts learned from peers or long periods may not fit the products in 64 bits.
        let (weighted, o1) = past.multipliedReportingOverflow(by: max(remain, 0))
        let (current, o2) = curr.multipliedReportingOverflow(by: period)
        let (sum, o3) = weighted.addingReportingOverflow(current)
        guard o1 || o2 || o3 else { return sum / period }
        let exact = (Double(past) * Double(max(remain, 0)) + Double(curr) * Double(period)) / Double(period)
        return exact >= Double(Int64.max) ? .max : Int64(exact)
    }

    /// Sets the counter to `value` events in a period starting now (`set table`).
    public static func set(_ value: Int64, now: Int64, tick: inout Int64, current: inout Int64, previous: inout Int64) {
        tick = now
        current = value
        previous = 0
    }
}
