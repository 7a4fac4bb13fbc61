import Shared

#if canImport(Glibc)
import Glibc
#endif

/// `show info`: process-wide facts and counters, in HAProxy's field order and positions
/// (fields that only exist in builds with SSL or zlib are left out, keeping the positions).
extension RuntimeAPI {
    static func infoCommands() -> [Spec] {
        [Spec(["show", "info"], usage: "show info [desc|json|typed|float]*", help: "report information about the running process") { s, _, command in
            let (format, _) = ReportFormat.parse(command.words.dropFirst(2))
            return CLIReply(InfoReport.render(s.api.infoFields(), format))
        }]
    }

    func infoFields() -> [TypedValue] {
        let frontends = runtime.frontends
        let uptime = max(0, WallClock.seconds() - startedAt)
        var limit = rlimit()
        getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit)
        let ulimit = Int(limit.rlim_cur)
        let current = runtime.globalGate.current.load(ordering: .relaxed)
        let listeners = engine.adoptedListeners().count
        let stopping = runtime.isStopping
        let hardMaxconn = runtime.configuration.global.maxconn ?? max(1, (ulimit - 20) / 2)
        let maxconn = runtime.globalGate.limit > 0 ? runtime.globalGate.limit : hardMaxconn
        let cumReq = frontends.reduce(0) { $0 + $1.counters.requests.load(ordering: .relaxed) }
        let bytesOut = frontends.reduce(0) { $0 + $1.counters.bytesOut.load(ordering: .relaxed) }
        let rss = Self.residentBytes()
        let warnings = DiagnosticPrinter.shared.startupLog.filter { $0.hasPrefix("[WARNING]") }.count
        var host = [CChar](repeating: 0, count: 256)
        gethostname(&host, 255)
        let hostName = String(decoding: host.prefix(while: { $0 != 0 }).map { UInt8(bitPattern: $0) }, as: UTF8.self)
        let node = runtime.configuration.global.node ?? hostName
        let uptimeText = Uptime(seconds: uptime).info

        let rows: [(Int, String, String, TypedValue.Kind, String, String)] = [
            (0, "Name", "POS", .str, "Hasp", "Product name"),
            (1, "Version", "POS", .str, HaspVersion.version, "Product version"),
            (2, "Release_date", "POS", .str, HaspVersion.date, "Date of the release"),
            (3, "Nbthread", "CGS", .u32, "\(runtime.loops.count)", "Number of event loops (global.nbthread)"),
            (4, "Nbproc", "CGS", .u32, "1", "Number of worker processes (always 1)"),
            (5, "Process_num", "KGP", .u32, "1", "Relative number of this worker (always 1)"),
            (6, "Pid", "SGP", .u32, "\(getpid())", "Process identifier of this worker"),
            (7, "Uptime", "MDP", .str, uptimeText, "Time since this worker started (days, hours, minutes, seconds)"),
            (8, "Uptime_sec", "MDP", .u32, "\(uptime)", "Time since this worker started, in seconds"),
            (9, "Memmax_MB", "CLP", .u32, "0", "Memory limit in megabytes (0: none)"),
            (10, "PoolAlloc_MB", "MGP", .u32, "\(rss >> 20)", "Memory held by this process, in megabytes"),
            (11, "PoolUsed_MB", "MGP", .u32, "\(rss >> 20)", "Memory in use by this process, in megabytes"),
            (12, "PoolFailed", "MCP", .u32, "0", "Failed memory allocations"),
            (13, "Ulimit-n", "CLP", .u32, "\(ulimit)", "Limit on open file descriptors"),
            (14, "Maxsock", "CLP", .u32, "\(ulimit)", "Limit on open sockets"),
            (15, "Maxconn", "CLP", .u32, "\(maxconn)", "Limit on concurrent connections (global.maxconn, set maxconn global)"),
            (16, "Hard_maxconn", "CLP", .u32, "\(hardMaxconn)", "Connection limit set at start-up"),
            (17, "CurrConns", "MGP", .u32, "\(current)", "Client connections open now"),
            (18, "CumConns", "MCP", .u32, "\(runtime.globalGate.total.load(ordering: .relaxed))", "Client connections accepted since start"),
            (19, "CumReq", "MCP", .u32, "\(cumReq)", "HTTP requests received since start"),
            (23, "Maxpipes", "CLP", .u32, "0", "Limit on pipes (no splicing in Hasp)"),
            (24, "PipesUsed", "MGP", .u32, "0", "Pipes in use"),
            (25, "PipesFree", "MGP", .u32, "0", "Pipes allocated but free"),
            (26, "ConnRate", "MRP", .u32, "\(runtime.globalGate.rate.perSecond())", "Connections accepted over the last second"),
            (27, "ConnRateLimit", "CLP", .u32, "0", "Limit on the connection rate (0: none)"),
            (28, "MaxConnRate", "MMP", .u32, "\(runtime.globalGate.rate.maximum())", "Highest connection rate seen"),
            (29, "SessRate", "MRP", .u32, "\(runtime.globalGate.rate.perSecond())", "Sessions created over the last second"),
            (30, "SessRateLimit", "CLP", .u32, "0", "Limit on the session rate (0: none)"),
            (31, "MaxSessRate", "MRP", .u32, "\(runtime.globalGate.rate.maximum())", "Highest session rate seen"),
            (42, "CompressBpsIn", "MRP", .u32, "0", "Compression input rate (no compression in Hasp)"),
            (43, "CompressBpsOut", "MRP", .u32, "0", "Compression output rate"),
            (44, "CompressBpsRateLim", "CLP", .u32, "0", "Limit on the compression rate"),
            (47, "Tasks", "MGP", .u32, "\(current + listeners)", "Scheduled tasks (connections and listeners)"),
            (48, "Run_queue", "MGP", .u32, "0", "Tasks waiting to run"),
            (49, "Idle_pct", "MaP", .u32, "100", "Share of time the event loops were idle"),
            (50, "node", "COS", .str, node, "Node name (the host name)"),
            (51, "description", "COS", .str, runtime.configuration.global.processDescription ?? "", "Node description"),
            (52, "Stopping", "MGP", .u32, stopping ? "1" : "0", "1 while this worker is stopping (draining)"),
            (53, "Jobs", "MGP", .u32, "\(current + listeners)", "Active jobs (connections and listeners)"),
            (54, "Unstoppable Jobs", "MGP", .u32, "0", "Jobs that a soft-stop does not end"),
            (55, "Listeners", "MGP", .u32, "\(stopping ? 0 : listeners)", "Listening sockets"),
            (56, "ActivePeers", "MGP", .u32, "\(runtime.peers.activePeers)", "Active peers"),
            (57, "ConnectedPeers", "MGP", .u32, "\(runtime.peers.connectedPeers)", "Connected peers"),
            (58, "DroppedLogs", "MGP", .u32, "0", "Log messages dropped"),
            (59, "BusyPolling", "MGP", .u32, "0", "1 when busy polling is on"),
            (60, "FailedResolutions", "MGP", .u32, "0", "Failed DNS resolutions"),
            (61, "TotalBytesOut", "MGP", .u64, "\(bytesOut)", "Bytes sent to clients since start"),
            (62, "TotalSplicedBytesOut", "MGP", .u64, "0", "Bytes sent by splicing"),
            (63, "BytesOutRate", "MRP", .u64, "0", "Bytes sent over the last second"),
            (64, "DebugCommandsIssued", "MGP", .u32, "0", "Debug commands run"),
            (65, "CumRecvLogs", "MCP", .u32, "0", "Log messages received"),
            (66, "Build info", "POS", .str, HaspVersion.version, "Build information"),
            (67, "Memmax_bytes", "CLP", .u32, "0", "Memory limit in bytes (0: none)"),
            (68, "PoolAlloc_bytes", "MGP", .u64, "\(rss)", "Memory held by this process, in bytes"),
            (69, "PoolUsed_bytes", "MGP", .u64, "\(rss)", "Memory in use by this process, in bytes"),
            (70, "Start_time_sec", "MDP", .u32, "\(startedAt)", "Start time, in seconds since the epoch"),
            (71, "Tainted", "SGP", .str, "0", "Non-zero when the process ran unusual or unsafe operations"),
            (72, "TotalWarnings", "MCP", .u32, "\(warnings)", "Warnings emitted since start"),
            (73, "MaxconnReached", "MCP", .u32, "\(runtime.globalGate.maxReached.load(ordering: .relaxed))", "Times the global maxconn was reached"),
            (74, "BootTime_ms", "MDP", .u32, "0", "Start-up time, in milliseconds"),
            (75, "Niced_tasks", "MGP", .u32, "0", "Tasks running with a lowered priority"),
            (76, "CurrStreams", "MGP", .u64, "\(current)", "Streams open now"),
            (77, "CumStreams", "MCP", .u64, "\(runtime.globalGate.total.load(ordering: .relaxed))", "Streams created since start"),
            (78, "BlockedTrafficWarnings", "MCP", .u32, "0", "Warnings about blocked traffic"),
            (79, "PatternsAdded", "MCP", .u64, "0", "Patterns added at run time"),
            (80, "PatternsFreed", "MCP", .u64, "0", "Patterns freed at run time"),
            (81, "NbThreadGroups", "CGS", .u32, "1", "Number of thread groups"),
        ]
        return rows.map { TypedValue(position: $0.0, name: $0.1, tags: $0.2, kind: $0.3, text: $0.4, description: $0.5) }
    }

    /// Resident set size from /proc/self/statm.
    static func residentBytes() -> Int {
        guard let bytes = FileReader.read("/proc/self/statm") else { return 0 }
        let fields = String(decoding: bytes, as: UTF8.self).split(separator: " ")
        guard fields.count > 1, let pages = Int(fields[1]) else { return 0 }
        return pages * Int(sysconf(Int32(_SC_PAGESIZE)))
    }
}

enum InfoReport {
    static func render(_ fields: [TypedValue], _ format: ReportFormat) -> String {
        switch format.style {
        case .plain:
            return fields.filter { !$0.text.isEmpty }.map { field in
                "\(field.name): \(field.text)" + (format.withDescription ? ":\"\(field.description)\"" : "") + "\n"
            }.joined()
        case .typed:
            return fields.filter { !$0.text.isEmpty }.map { field in
                "\(field.position).\(field.name).1:\(field.typedTags):\(field.typedValue)"
                    + (format.withDescription ? ":\"\(field.description)\"" : "") + "\n"
            }.joined()
        case .json:
            return "[" + fields.map { $0.json(prefix: "") }.joined(separator: ",") + "]\n"
        }
    }
}
