/// The fetches and converters that read and update stick tables: `sc_*` and `sc0_*`..`sc2_*`
/// (the tracked entries), `src_*` (the client address's entry), the `table_*` converters
/// (the input's entry), `table_avl`, `table_cnt` and `in_table`. Generated from one list of
/// data operations, as HAProxy names them.
enum StickFetches {
    /// What a fetch does with an entry.
    enum Operation: Sendable {
        /// A datum; `fallback` is read when `kind` is not stored (`gpc0` → `gpc[0]`).
        case read(StickDataKind, fallback: StickDataKind?, index: Int)
        /// An element of an array type, its index in the fetch's first argument.
        case readIndexed(StickDataKind)
        /// A byte count in kilobytes.
        case kilobytes(StickDataKind)
        /// `inc_gpc0`: the counter and its rate count one event; answers the new count.
        case increment(StickDataKind, rate: StickDataKind, fallback: StickDataKind, fallbackRate: StickDataKind, index: Int)
        case incrementIndexed
        /// `clr_gpc0`: answers the count before it is cleared.
        case clear(StickDataKind, fallback: StickDataKind, index: Int)
        case clearIndexed
        /// Streams tracking the entry.
        case trackers
        /// `src_updt_conn_cnt`: counts a connection; answers `conn_cnt`.
        case countConnection

        var changesEntry: Bool {
            switch self {
            case .increment, .incrementIndexed, .clear, .clearIndexed, .countConnection: return true
            default: return false
            }
        }
        var isIndexed: Bool {
            switch self {
            case .readIndexed, .incrementIndexed, .clearIndexed: return true
            default: return false
            }
        }
    }

    /// Fetch name suffixes (after `sc_`, `sc0_`, `src_`) and what they do.
    static let operations: [(String, Operation)] = [
        ("conn_cnt", .read(.connCnt, fallback: nil, index: 0)), ("conn_cur", .read(.connCur, fallback: nil, index: 0)),
        ("conn_rate", .read(.connRate, fallback: nil, index: 0)),
        ("sess_cnt", .read(.sessCnt, fallback: nil, index: 0)), ("sess_rate", .read(.sessRate, fallback: nil, index: 0)),
        ("http_req_cnt", .read(.httpReqCnt, fallback: nil, index: 0)), ("http_req_rate", .read(.httpReqRate, fallback: nil, index: 0)),
        ("http_err_cnt", .read(.httpErrCnt, fallback: nil, index: 0)), ("http_err_rate", .read(.httpErrRate, fallback: nil, index: 0)),
        ("http_fail_cnt", .read(.httpFailCnt, fallback: nil, index: 0)), ("http_fail_rate", .read(.httpFailRate, fallback: nil, index: 0)),
        ("bytes_in_rate", .read(.bytesInRate, fallback: nil, index: 0)), ("bytes_out_rate", .read(.bytesOutRate, fallback: nil, index: 0)),
        ("kbytes_in", .kilobytes(.bytesInCnt)), ("kbytes_out", .kilobytes(.bytesOutCnt)),
        ("get_gpc0", .read(.gpc0, fallback: .gpc, index: 0)), ("get_gpc1", .read(.gpc1, fallback: .gpc, index: 1)),
        ("get_gpt0", .read(.gpt0, fallback: .gpt, index: 0)),
        ("gpc0_rate", .read(.gpc0Rate, fallback: .gpcRate, index: 0)), ("gpc1_rate", .read(.gpc1Rate, fallback: .gpcRate, index: 1)),
        ("inc_gpc0", .increment(.gpc0, rate: .gpc0Rate, fallback: .gpc, fallbackRate: .gpcRate, index: 0)),
        ("inc_gpc1", .increment(.gpc1, rate: .gpc1Rate, fallback: .gpc, fallbackRate: .gpcRate, index: 1)),
        ("clr_gpc0", .clear(.gpc0, fallback: .gpc, index: 0)), ("clr_gpc1", .clear(.gpc1, fallback: .gpc, index: 1)),
        ("trackers", .trackers),
        ("get_gpc", .readIndexed(.gpc)), ("gpc_rate", .readIndexed(.gpcRate)), ("get_gpt", .readIndexed(.gpt)),
        ("inc_gpc", .incrementIndexed), ("clr_gpc", .clearIndexed),
    ]

    /// Converter names (after `table_`) and what they read.
    static let converterOperations: [(String, Operation)] = operations.compactMap { name, op in
        if op.changesEntry { return nil }
        switch name {
        case "get_gpc0": return ("gpc0", op)
        case "get_gpc1": return ("gpc1", op)
        case "get_gpt0": return ("gpt0", op)
        case "get_gpc": return ("gpc", op)
        case "get_gpt": return ("gpt", op)
        default: return (name, op)
        }
    }

    /// Applies `op` to the entry at `slot` (nil: the key has no entry, which reads as 0).
    /// Nil when the table does not store the datum.
    static func apply(_ op: Operation, index: Int, _ s: inout StickTableStorage, _ slot: Int32?, now: Int64) -> Int64? {
        func stored(_ kind: StickDataKind, _ fallback: StickDataKind?, _ i: Int) -> (StickDataKind, Int)? {
            if s.layout.offset(kind) != nil { return (kind, 0) }
            if let fallback, s.layout.offset(fallback, i) != nil { return (fallback, i) }
            return nil
        }
        switch op {
        case .read(let kind, let fallback, let i):
            guard let (k, at) = stored(kind, fallback, i) else { return nil }
            guard let slot else { return 0 }
            return s.value(slot, k, at: at, now: now)
        case .readIndexed(let kind):
            guard s.layout.offset(kind, index) != nil else { return nil }
            guard let slot else { return 0 }
            return s.value(slot, kind, at: index, now: now)
        case .kilobytes(let kind):
            guard s.layout.offset(kind) != nil else { return nil }
            guard let slot else { return 0 }
            return (s.value(slot, kind, now: now) ?? 0) >> 10
        case .increment(let kind, let rate, let fallback, let fallbackRate, let i):
            let counter = stored(kind, fallback, i)
            let counterRate = stored(rate, fallbackRate, i)
            guard counter != nil || counterRate != nil else { return nil }
            guard let slot else { return 0 }
            if let (k, at) = counterRate { s.add(slot, k, 1, at: at, now: now) }
            guard let (k, at) = counter else { return 0 }
            s.add(slot, k, 1, at: at, now: now)
            s.touch(slot, now: now)
            return s.value(slot, k, at: at, now: now)
        case .incrementIndexed:
            guard s.layout.offset(.gpc, index) != nil || s.layout.offset(.gpcRate, index) != nil else { return nil }
            guard let slot else { return 0 }
            s.add(slot, .gpcRate, 1, at: index, now: now)
            s.touch(slot, now: now)
            guard s.add(slot, .gpc, 1, at: index, now: now) else { return 0 }
            return s.value(slot, .gpc, at: index, now: now)
        case .clear(let kind, let fallback, let i):
            guard let (k, at) = stored(kind, fallback, i) else { return nil }
            guard let slot else { return 0 }
            let before = s.value(slot, k, at: at, now: now)
            s.set(slot, k, 0, at: at, now: now)
            s.touch(slot, now: now)
            return before
        case .clearIndexed:
            guard s.layout.offset(.gpc, index) != nil else { return nil }
            guard let slot else { return 0 }
            let before = s.value(slot, .gpc, at: index, now: now)
            s.set(slot, .gpc, 0, at: index, now: now)
            s.touch(slot, now: now)
            return before
        case .trackers:
            guard let slot else { return 0 }
            return Int64(s.references(slot))
        case .countConnection:
            guard let slot else { return 0 }
            s.add(slot, .connCnt, 1, now: now)
            s.add(slot, .connRate, 1, now: now)
            s.touch(slot, now: now)
            return s.value(slot, .connCnt, now: now) ?? 0
        }
    }

    /// `op` on the entry of `key` in `table`, created first when `op` changes it.
    static func apply(_ op: Operation, index: Int, table: StickTable, key: StickKey) -> SampleValue? {
        let now = table.now
        let result: Int64? = table.withStorage { s in
            let slot = op.changesEntry ? s.findOrCreate(key, now: now) : s.find(key, now: now)
            return apply(op, index: index, &s, slot, now: now)
        }
        return result.map { .int($0) }
    }

    /// `op` on tracked counter `number`, or on its key in `tableName` when that names another
    /// table. No sample when nothing is tracked.
    static func applyTracked(_ op: Operation, index: Int, number: Int, tableName: String?, _ c: SampleContext) -> FetchResult {
        guard let tracker = c.stickCounters?.tracker(number) else { return .none }
        if let tableName, tableName != tracker.table.name {
            guard let other = c.stickTables?[tableName] else { return .none }
            let now = other.now
            let result: Int64? = other.withStorage { s in
                apply(op, index: index, &s, s.find(tracker.key, now: now), now: now)
            }
            return result.map { .one(.int($0)) } ?? .none
        }
        let now = tracker.table.now
        let result: Int64? = tracker.table.withStorage { s in apply(op, index: index, &s, tracker.slot, now: now) }
        return result.map { .one(.int($0)) } ?? .none
    }

    static func table(_ c: SampleContext, _ argument: SampleArgument?) -> StickTable? {
        guard let name = argument?.string else { return nil }
        return c.stickTables?[name]
    }

    // MARK: - The table of fetches

    static let fetches: [FetchDefinition] = {
        var list: [FetchDefinition] = []
        for (suffix, op) in operations {
            let indexed = op.isIndexed
            // sc_<x>([idx,]ctr[,table])
            list.append(FetchDefinition("sc_" + suffix, indexed ? [.int, .int, .table(defaultsToProxy: false)] : [.int, .table(defaultsToProxy: false)],
                                        required: indexed ? 2 : 1, .int, .internalState) { c, a, _ in
                let base = indexed ? 1 : 0
                return applyTracked(op, index: Int(a[0].int ?? 0), number: Int(a[base].int ?? -1),
                                    tableName: a.count > base + 1 ? a[base + 1].string : nil, c)
            })
            // sc0_<x>([table]) .. sc2_<x>([table])
            if !indexed {
                for number in 0..<StickCounters.defaultCount {
                    list.append(FetchDefinition("sc\(number)_" + suffix, [.table(defaultsToProxy: false)], .int, .internalState) { c, a, _ in
                        applyTracked(op, index: 0, number: number, tableName: a.first?.string, c)
                    })
                }
            }
            // src_<x>([idx,][table])
            list.append(FetchDefinition("src_" + suffix, indexed ? [.int, .table(defaultsToProxy: true)] : [.table(defaultsToProxy: true)],
                                        required: indexed ? 1 : 0, .int, .layer4) { c, a, _ in
                guard let table = table(c, a.last), let address = c.clientAddress,
                      let key = StickKey(address, type: table.keyType) else { return .none }
                return apply(op, index: Int(indexed ? a[0].int ?? 0 : 0), table: table, key: key).map { .one($0) } ?? .none
            })
        }
        list.append(FetchDefinition("src_updt_conn_cnt", [.table(defaultsToProxy: true)], .int, .layer4) { c, a, _ in
            guard let table = table(c, a.last), let address = c.clientAddress,
                  let key = StickKey(address, type: table.keyType) else { return .none }
            return apply(.countConnection, index: 0, table: table, key: key).map { .one($0) } ?? .none
        })
        list.append(FetchDefinition("sc_tracked", [.int, .table(defaultsToProxy: false)], required: 1, .bool, .internalState) { c, a, _ in
            .one(.bool(c.stickCounters?.tracker(Int(a[0].int ?? -1)) != nil))
        })
        for number in 0..<StickCounters.defaultCount {
            list.append(FetchDefinition("sc\(number)_tracked", [.table(defaultsToProxy: false)], .bool, .internalState) { c, _, _ in
                .one(.bool(c.stickCounters?.tracker(number) != nil))
            })
        }
        list.append(FetchDefinition("table_avl", [.table(defaultsToProxy: true)], .int, .internalState) { c, a, _ in
            guard let table = table(c, a.last) else { return .none }
            return .one(.int(Int64(max(0, table.definition.size - table.used))))
        })
        list.append(FetchDefinition("table_cnt", [.table(defaultsToProxy: true)], .int, .internalState) { c, a, _ in
            guard let table = table(c, a.last) else { return .none }
            return .one(.int(Int64(table.used)))
        })
        return list
    }()

    static let converters: [ConverterDefinition] = {
        var list: [ConverterDefinition] = []
        for (suffix, op) in converterOperations {
            let indexed = op.isIndexed
            list.append(ConverterDefinition("table_" + suffix, indexed ? [.int, .table(defaultsToProxy: true)] : [.table(defaultsToProxy: true)],
                                            required: indexed ? 1 : 0, .any, .int) { v, a, c in
                guard let table = table(c, a.last), let key = StickKey(v, type: table.keyType) else { return nil }
                return apply(op, index: Int(indexed ? a[0].int ?? 0 : 0), table: table, key: key)
            })
        }
        list.append(ConverterDefinition("table_server_id", [.table(defaultsToProxy: true)], required: 0, .any, .int) { v, a, c in
            guard let table = table(c, a.last), let key = StickKey(v, type: table.keyType) else { return nil }
            return apply(.read(.serverID, fallback: nil, index: 0), index: 0, table: table, key: key)
        })
        // table_expire / table_idle: milliseconds before expiry / since the last update.
        for (name, idle) in [("table_expire", false), ("table_idle", true)] {
            list.append(ConverterDefinition(name, [.table(defaultsToProxy: true), .int], required: 0, .any, .int) { v, a, c in
                guard let table = table(c, a.first), let key = StickKey(v, type: table.keyType) else { return nil }
                let now = table.now
                let expire = table.definition.expire ?? 0
                let remaining: Int64? = table.withStorage { s in s.find(key, now: now).map { s.remaining($0, now: now) } }
                guard let remaining else { return a.count > 1 ? a[1].int.map { .int($0) } : nil }
                return .int(idle ? max(0, expire - remaining) : remaining)
            })
        }
        list.append(ConverterDefinition("in_table", [.table(defaultsToProxy: true)], required: 0, .any, .bool) { v, a, c in
            guard let table = table(c, a.last), let key = StickKey(v, type: table.keyType) else { return nil }
            let now = table.now
            return .bool(table.withStorage { s in s.find(key, now: now) != nil })
        })
        return list
    }()
}
