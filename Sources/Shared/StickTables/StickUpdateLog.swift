/// The order of a table's local changes, as peers push them (HAProxy's update sequence): each
/// change gives its entry the next sequence number, and a peer session sends the entries whose
/// number is past its cursor, each once however often it changed in between. Entries learned
/// from peers are not recorded, so nothing echoes back.
public struct StickUpdateLog: Sendable {
    /// The sequence number of the newest change.
    public private(set) var last: UInt64 = 0
    /// Per slot, the sequence number of its newest change (0: none, or removed).
    private var sequenceOf: [UInt64] = []
    /// Changes by increasing sequence number; an item is stale once its slot changed again.
    private var log: [Change] = []
    /// The newest sequence number a session has read: changes after it may merge.
    private var readUpTo: UInt64 = 0
    private var liveCount = 0

    struct Change: Sendable {
        var sequence: UInt64
        var slot: Int32
    }

    public init() {}

    mutating func record(_ slot: Int32) {
        let s = Int(slot)
        if s >= sequenceOf.count { sequenceOf.append(contentsOf: repeatElement(0, count: s + 1 - sequenceOf.count)) }
        // A run of changes to one entry that no session has read yet is one change.
        if let tail = log.last, tail.slot == slot, tail.sequence > readUpTo, sequenceOf[s] == tail.sequence { return }
        if sequenceOf[s] == 0 { liveCount += 1 }
        last += 1
        sequenceOf[s] = last
        log.append(Change(sequence: last, slot: slot))
        if log.count > 4096, log.count > 2 * liveCount { compact() }
    }

    /// Every change so far counts as read: later changes get numbers of their own (a session
    /// that took `last` as its cursor without reading the changes must see the next ones).
    mutating func markRead() { readUpTo = last }

    mutating func forget(_ slot: Int32) {
        let s = Int(slot)
        guard s < sequenceOf.count, sequenceOf[s] != 0 else { return }
        sequenceOf[s] = 0
        liveCount -= 1
    }

    /// The entries changed after `cursor`, oldest change first, at most `limit`, with the
    /// sequence number of each.
    public mutating func changes(after cursor: UInt64, limit: Int) -> [(slot: Int32, sequence: UInt64)] {
        var low = 0, high = log.count
        while low < high {
            let mid = (low + high) / 2
            if log[mid].sequence <= cursor { low = mid + 1 } else { high = mid }
        }
        var result: [(slot: Int32, sequence: UInt64)] = []
        var i = low
        while i < log.count, result.count < limit {
            let change = log[i]
            if sequenceOf[Int(change.slot)] == change.sequence { result.append((change.slot, change.sequence)) }
            i += 1
        }
        if let newest = result.last?.sequence, newest > readUpTo { readUpTo = newest }
        return result
    }

    private mutating func compact() {
        log.removeAll { sequenceOf[Int($0.slot)] != $0.sequence }
    }
}
