import Shared

/// One SRV record of an answer: the target to resolve, its port and weight.
struct ServiceRecord: Equatable, Sendable {
    var target: String
    var port: Int
    var weight: Int
    var priority: Int

    /// HAProxy's weight for an SRV weight (0...65535 onto 0...256, 0 staying 0).
    var serverWeight: Int { (weight + 255) / 256 }
}

/// How answers become server addresses, as HAProxy decides: pure functions, tested alone.
enum AddressAssignment {
    /// The answer's addresses in the order servers take them: the preferred family first
    /// (IPv6 unless `resolve-prefer ipv4`), and within it those of `resolve-net` first.
    static func ordered(ipv4: [String], ipv6: [String], preferIPv4: Bool, nets: [IPNetwork]) -> [String] {
        let families = preferIPv4 ? [ipv4, ipv6] : [ipv6, ipv4]
        guard !nets.isEmpty else { return families.flatMap { $0 } }
        return families.flatMap { addresses in
            let inNets = addresses.filter { text in
                guard let address = IPNetwork.parse(text)?.address else { return false }
                return nets.contains { $0.contains(address) }
            }
            return inNets + addresses.filter { !inNets.contains($0) }
        }
    }

    /// Gives each server of a backend resolving one name an address of the answer: a server
    /// keeps its address while the answer still has it; the others take the addresses no other
    /// server has, in order (one with `allow-dup-ip` simply the first); the rest get none
    /// (they wait in maintenance). Addresses are IPs without ports, as HAProxy compares them.
    static func assign(current: [String?], allowDuplicates: [Bool], answer: [String]) -> [String?] {
        var taken: [String] = []
        var result: [String?] = current.indices.map { i in
            guard let ip = current[i], answer.contains(ip) else { return nil }
            if !allowDuplicates[i], taken.contains(ip) { return nil }
            taken.append(ip)
            return ip
        }
        for i in result.indices where result[i] == nil {
            if allowDuplicates[i] {
                result[i] = answer.first
            } else if let free = answer.first(where: { !taken.contains($0) }) {
                result[i] = free
                taken.append(free)
            }
        }
        return result
    }

    /// A slot of an SRV `server-template`: the record it follows, and when an answer last had it.
    struct ServiceSlot: Equatable {
        var record: ServiceRecord?
        var lastSeenMs = 0
    }

    /// Fills the slots from an SRV answer: a slot keeps its record (same target and port) while
    /// answers carry it, and for `hold obsolete` after they stop; free slots take the new
    /// records in order; records beyond the slots wait.
    static func assign(slots: [ServiceSlot], records: [ServiceRecord], nowMs: Int, obsoleteMs: Int) -> [ServiceSlot] {
        func same(_ a: ServiceRecord, _ b: ServiceRecord) -> Bool { a.target.lowercased() == b.target.lowercased() && a.port == b.port }
        var unplaced = records
        var result = slots.map { slot -> ServiceSlot in
            guard let record = slot.record else { return slot }
            if let i = unplaced.firstIndex(where: { same($0, record) }) {
                return ServiceSlot(record: unplaced.remove(at: i), lastSeenMs: nowMs)
            }
            return nowMs - slot.lastSeenMs >= obsoleteMs ? ServiceSlot() : slot
        }
        for i in result.indices where result[i].record == nil && !unplaced.isEmpty {
            result[i] = ServiceSlot(record: unplaced.removeFirst(), lastSeenMs: nowMs)
        }
        return result
    }
}
