#if canImport(Glibc)
import Glibc
#endif

// The lookup structures of compiled pattern lists (`CompiledPatterns`): exact strings by hash,
// prefixes by trie.

/// The `str` patterns (and exact map keys): an open-addressing table of byte strings with
/// their hashes kept. Patterns compare as bytes, as in HAProxy (a Swift `String` key would
/// compare canonical equivalence, and a `Dictionary` compares whole keys all along a probe
/// chain: a miss in a 10,000-entry map cost several of those). Here a probe costs a hash
/// comparison, and the table stays at most half full.
struct ExactTable: Sendable {
    private var bytes: [UInt8] = []
    private var starts: [Int32] = []
    private var lengths: [Int32] = []
    private var hashes: [UInt32] = []
    private var values: [Int32] = []
    /// Each slot holds an entry number plus one; 0 is an empty slot.
    private var slots: [Int32] = Array(repeating: 0, count: 8)

    /// A per-process seed: lookups come from clients, and chains should not be predictable.
    private static let seed = UInt32.random(in: 0 ... .max)

    static func hash(_ key: UnsafeBufferPointer<UInt8>) -> UInt32 {
        var h: UInt32 = 2_166_136_261 ^ seed
        for b in key { h = (h ^ UInt32(b)) &* 16_777_619 }
        return h ^ (h >> 15)
    }

    var isEmpty: Bool { starts.isEmpty }

    /// Adds `key` for `value` unless the key is already there (the first pattern wins).
    mutating func insert(_ key: String, value: Int) {
        var key = key
        key.withUTF8 { k in
            if find(k) != nil { return }
            if (starts.count + 1) * 2 > slots.count { grow() }
            let h = Self.hash(k)
            starts.append(Int32(bytes.count))
            lengths.append(Int32(k.count))
            hashes.append(h)
            values.append(Int32(value))
            bytes.append(contentsOf: k)
            place(starts.count - 1, hash: h)
        }
    }

    private mutating func place(_ entry: Int, hash: UInt32) {
        let mask = slots.count - 1
        var slot = Int(hash) & mask
        while slots[slot] != 0 { slot = (slot + 1) & mask }
        slots[slot] = Int32(entry + 1)
    }

    private mutating func grow() {
        slots = Array(repeating: 0, count: slots.count * 2)
        for entry in starts.indices { place(entry, hash: hashes[entry]) }
    }

    func find(_ key: UnsafeBufferPointer<UInt8>) -> Int? {
        guard !starts.isEmpty else { return nil }
        let h = Self.hash(key)
        let mask = slots.count - 1
        var slot = Int(h) & mask
        return bytes.withUnsafeBufferPointer { stored in
            while true {
                let e = Int(slots[slot]) - 1
                if e < 0 { return nil }
                if hashes[e] == h, Int(lengths[e]) == key.count,
                   key.count == 0 || memcmp(stored.baseAddress! + Int(starts[e]), key.baseAddress!, key.count) == 0 {
                    return Int(values[e])
                }
                slot = (slot + 1) & mask
            }
        }
    }
}

/// A byte trie of prefixes: the longest pattern that begins the subject. Each node keeps its
/// children as a short list of (byte, node) pairs: fan-out is small, and a scan beats hashing.
final class PrefixTrie: @unchecked Sendable {
    private var labels: [[UInt8]] = [[]]
    private var targets: [[Int32]] = [[]]
    private var terminal: [Int32] = [-1]

    func insert(_ key: [UInt8], index: Int) {
        var node = 0
        for b in key {
            if let i = labels[node].firstIndex(of: b) {
                node = Int(targets[node][i])
            } else {
                labels.append([])
                targets.append([])
                terminal.append(-1)
                labels[node].append(b)
                targets[node].append(Int32(labels.count - 1))
                node = labels.count - 1
            }
        }
        if terminal[node] < 0 { terminal[node] = Int32(index) }
    }

    func longestMatch<Subject: Sequence<UInt8>>(_ subject: Subject) -> Int? {
        var node = 0
        var best = terminal[0]
        for b in subject {
            guard let i = labels[node].firstIndex(of: b) else { break }
            node = Int(targets[node][i])
            if terminal[node] >= 0 { best = terminal[node] }
        }
        return best >= 0 ? Int(best) : nil
    }
}
