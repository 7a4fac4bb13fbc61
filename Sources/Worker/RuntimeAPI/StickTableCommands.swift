import Shared

/// `show table`, `clear table` and `set table`, with HAProxy's output and messages. They run
/// on the CLI's thread; a table's lock is held for short batches, never for a whole dump.
extension RuntimeAPI {
    static func stickTableCommands() -> [Spec] {
        [
            Spec(["show", "table"], usage: "show table <table> [<filter>]*",
                 help: "report table usage stats or dump this table's contents (filter: data/key)", level: .operator) { s, _, c in
                let tables = s.runtime.stickTables
                guard c.words.count > 2 else {
                    // HAProxy lists the tables from the last declared.
                    return CLIReply(tables.tables.reversed().map { StickTableDump.header($0) }.joined())
                }
                guard let table = tables[c.words[2]] else { return .error("No such table\n") }
                switch StickTableQuery.parse(Array(c.words.dropFirst(3)), table: table, action: .show) {
                case .failure(let message): return .error(message)
                case .success(let query):
                    guard let query else { return .empty }
                    let index = tables.tables.firstIndex { $0 === table } ?? 0
                    return CLIReply(StickTableDump.render(table, tableIndex: index, query: query))
                }
            },
            Spec(["show", "peers"], usage: "show peers [dict|-] [<section>]",
                 help: "dump peers connections and their states", level: .operator) { s, _, c in
                var words = Array(c.words.dropFirst(2))
                var dictionaries = false
                if let first = words.first, first == "dict" || first == "-" {
                    dictionaries = first == "dict"
                    words.removeFirst()
                }
                guard let text = s.runtime.peers.report(section: words.first, dictionaries: dictionaries) else {
                    return .error("No such peers\n")
                }
                return CLIReply(text.isEmpty ? "" : text + "\n")
            },
            Spec(["clear", "table"], usage: "clear table <table> [<filter>]*",
                 help: "remove an entry from a table (filter: data/key)", level: .admin) { s, _, c in
                guard c.words.count > 2 else {
                    return .error("Required arguments: <table> \"data.<store_data_type>\" <operator> <value> or <table> key <key>\n")
                }
                guard let table = s.runtime.stickTables[c.words[2]] else { return .error("No such table\n") }
                switch StickTableQuery.parse(Array(c.words.dropFirst(3)), table: table, action: .clear) {
                case .failure(let message): return .error(message)
                case .success(let query):
                    guard let query else { return .empty }
                    StickTableDump.clear(table, query: query)
                    return .empty
                }
            },
            Spec(["set", "table"], usage: "set table <table> key <k> [data.* <v>]*",
                 help: "update or create a table entry's data", level: .admin) { s, _, c in
                guard c.words.count > 2 else {
                    return .error("Required arguments: <table> key <key> [data.<store_data_type> <value>]*\n")
                }
                guard let table = s.runtime.stickTables[c.words[2]] else { return .error("No such table\n") }
                return StickTableDump.set(table, Array(c.words.dropFirst(3)))
            },
        ]
    }
}

/// What `show table` and `clear table` select: one key, or entries whose data pass filters.
struct StickTableQuery {
    enum Action { case show, clear }
    enum Comparison: String { case eq, ne, le, ge, lt, gt }
    struct Filter {
        var kind: StickDataKind
        var comparison: Comparison
        var value: Int64
    }

    var key: StickKey?
    var filters: [Filter] = []

    /// Nil query: nothing to do and nothing to say (a key that does not parse).
    static func parse(_ words: [String], table: StickTable, action: Action) -> Result<StickTableQuery?, QueryError> {
        var query = StickTableQuery()
        guard let first = words.first else { return .success(query) }
        if first == "key" {
            guard words.count > 1, !words[1].isEmpty else { return .failure(QueryError("Key value expected\n")) }
            guard let key = StickKey(text: words[1], type: table.keyType) else { return .success(nil) }
            query.key = key
            return .success(query)
        }
        guard first.hasPrefix("data.") else {
            return .failure(QueryError("Optional argument only supports \"data.<store_data_type>\" <operator> <value> and key <key>\n"))
        }
        var i = 0
        while i < words.count {
            let number = query.filters.count + 1
            guard query.filters.count < 4 else {
                return .failure(QueryError("Detected extra data in filter, \(i + 4)th word of input, after '\(words[i - 1])'\n"))
            }
            guard words[i].hasPrefix("data."), let kind = StickDataKind(name: String(words[i].dropFirst(5))) else {
                return .failure(QueryError("Filter entry #\(number): Unknown data type\n"))
            }
            guard table.definition.stored(kind) != nil else {
                return .failure(QueryError("Filter entry #\(number): Data type not stored in this table\n"))
            }
            guard i + 1 < words.count, let comparison = Comparison(rawValue: words[i + 1]) else {
                return .failure(QueryError("Filter entry #\(number): Require and operator among \"eq\", \"ne\", \"le\", \"ge\", \"lt\", \"gt\"\n"))
            }
            guard i + 2 < words.count, let value = Int64(words[i + 2]) else {
                return .failure(QueryError("Filter entry #\(number): Require a valid integer value to compare against\n"))
            }
            query.filters.append(Filter(kind: kind, comparison: comparison, value: value))
            i += 3
        }
        return .success(query)
    }

    func matches(_ s: StickTableStorage, _ slot: Int32, now: Int64) -> Bool {
        for filter in filters {
            let v = s.value(slot, filter.kind, now: now) ?? 0
            let pass: Bool
            switch filter.comparison {
            case .eq: pass = v == filter.value
            case .ne: pass = v != filter.value
            case .le: pass = v <= filter.value
            case .ge: pass = v >= filter.value
            case .lt: pass = v < filter.value
            case .gt: pass = v > filter.value
            }
            if !pass { return false }
        }
        return true
    }
}

struct QueryError: Error {
    var message: String
    init(_ message: String) { self.message = message }
}

extension CLIReply {
    static func error(_ failure: QueryError) -> CLIReply { .error(failure.message) }
}

/// Renders and edits tables for the CLI.
enum StickTableDump {
    static let batch = 512

    static func header(_ table: StickTable) -> String {
        "# table: \(table.name), type: \(table.keyType.name), size:\(table.definition.size), used:\(table.used)\n"
    }

    static func render(_ table: StickTable, tableIndex: Int, query: StickTableQuery) -> String {
        var text = header(table)
        let now = table.now
        var entries: [(key: StickKey, slot: Int32)]
        if let key = query.key {
            entries = table.withStorage { s in s.find(key, now: now).map { [(key, $0)] } ?? [] }
        } else {
            entries = table.withStorage { s in s.slots().map { (s.key($0), $0) } }
            entries.sort { StickKey.ordered($0.key, $1.key) }
        }
        var start = 0
        while start < entries.count {
            let chunk = entries[start..<min(entries.count, start + batch)]
            start += batch
            text += table.withStorage { s -> String in
                var lines = ""
                for (key, slot) in chunk where s.key(slot) == key && (s.find(key, now: now) == slot) {
                    if !query.filters.isEmpty, !query.matches(s, slot, now: now) { continue }
                    lines += line(s, slot, table: table, tableIndex: tableIndex, now: now)
                }
                return lines
            }
        }
        return text
    }

    /// `0x...: key=<k> use=<n> exp=<ms> <data>...`.
    static func line(_ s: StickTableStorage, _ slot: Int32, table: StickTable, tableIndex: Int, now: Int64) -> String {
        // HAProxy prints the entry's address; an entry here has none, so its table and slot
        // make a stable identifier of the same shape.
        let pseudoAddress = 0x5600_0000_0000 + (UInt64(tableIndex) << 32) + UInt64(slot) * 0x40
        var text = "0x" + String(pseudoAddress, radix: 16) + ": key=" + s.key(slot).text(table.keyType)
        text += " use=\(s.references(slot)) exp=\(s.remaining(slot, now: now))"
        for item in s.layout.stored {
            let kind = item.kind
            if kind == .serverKey {
                text += " server_key=" + (s.serverKey(slot) ?? "")
                continue
            }
            for element in 0..<item.count {
                let value = s.value(slot, kind, at: element, now: now) ?? 0
                let name: String
                switch kind {
                case .gpt: name = "gpt\(element)"
                case .gpc: name = "gpc\(element)"
                case .gpcRate: name = "gpc\(element)_rate"
                default: name = kind.name
                }
                text += " " + name + (kind.isRate ? "(\(item.period))" : "") + "=\(value)"
            }
        }
        return text + "\n"
    }

    static func clear(_ table: StickTable, query: StickTableQuery) {
        let now = table.now
        if let key = query.key {
            table.withStorage { s in
                if let slot = s.find(key, now: now) { s.removeIfUnused(slot) }
            }
            return
        }
        let slots = table.withStorage { s in s.slots() }
        var start = 0
        while start < slots.count {
            let chunk = slots[start..<min(slots.count, start + batch)]
            start += batch
            table.withStorage { s in
                for slot in chunk where s.find(s.key(slot), now: now) == slot {
                    if query.filters.isEmpty || query.matches(s, slot, now: now) { s.removeIfUnused(slot) }
                }
            }
        }
    }

    /// `set table <t> key <k> [data.<type> <value>]*`: the pairs apply in order; the first bad
    /// one stops (the ones before it stay applied, as in HAProxy).
    static func set(_ table: StickTable, _ words: [String]) -> CLIReply {
        guard let first = words.first else { return .empty }
        guard first == "key" else {
            return .error("content-based lookup is only supported with the \"show\" and \"clear\" actions\n")
        }
        guard words.count > 1, !words[1].isEmpty else { return .error("Key value expected\n") }
        guard let key = StickKey(text: words[1], type: table.keyType) else { return .error("Invalid key\n") }
        let now = table.now
        return table.withStorage { s -> CLIReply in
            guard let slot = s.findOrCreate(key, now: now) else { return .error("Unable to allocate a new entry\n") }
            s.touch(slot, now: now)
            var i = 2
            while i < words.count {
                guard words[i].hasPrefix("data."), i + 1 < words.count else {
                    return .error("\"data.<type>\" followed by a value expected\n")
                }
                guard let kind = StickDataKind(name: String(words[i].dropFirst(5))), kind != .serverKey else {
                    return .error("Unknown data type\n")
                }
                guard s.layout.offset(kind) != nil else { return .error("Data type not stored in this table\n") }
                guard let value = Int64(words[i + 1]) else { return .error("Require a valid integer value to store\n") }
                s.set(slot, kind, value, now: now)
                i += 2
            }
            return .empty
        }
    }
}
