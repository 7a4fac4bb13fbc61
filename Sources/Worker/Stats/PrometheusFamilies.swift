/// The metric families of the exporter, scope by scope, in HAProxy 2.6's order. Listener and
/// stick-table families are absent: Hasp has neither `option socket-stats` nor stick tables,
/// and HAProxy writes nothing for them either when they have no object.
extension PrometheusExposition {
    private static func g(_ name: String, _ help: String, _ source: MetricFamily.Source, http: Bool = false) -> MetricFamily {
        MetricFamily(name: name, kind: .gauge, help: help, source: source, httpOnly: http)
    }

    private static func c(_ name: String, _ help: String, _ source: MetricFamily.Source, http: Bool = false) -> MetricFamily {
        MetricFamily(name: name, kind: .counter, help: help, source: source, httpOnly: http)
    }

    /// Families several scopes share, in the order HAProxy writes them.
    private static func sessionFamilies(_ p: String, limit: String) -> [MetricFamily] {
        [
            g(p + "current_sessions", "Sessions open now.", .column("scur")),
            g(p + "max_sessions", "Highest number of open sessions seen.", .column("smax")),
            g(p + "limit_sessions", "Limit on open sessions (\(limit)).", .column("slim")),
            c(p + "sessions_total", "Sessions since the worker started.", .column("stot")),
            c(p + "bytes_in_total", "Bytes received from clients.", .column("bin")),
            c(p + "bytes_out_total", "Bytes sent to clients.", .column("bout")),
        ]
    }

    private static func queueFamilies(_ p: String) -> [MetricFamily] {
        [
            g(p + "current_queue", "Requests waiting in the queue now.", .column("qcur")),
            g(p + "max_queue", "Highest number of queued requests seen.", .column("qmax")),
        ]
    }

    private static func compressionFamilies(_ p: String) -> [MetricFamily] {
        [
            c(p + "http_comp_bytes_in_total", "Bytes given to the HTTP compressor.", .column("comp_in"), http: true),
            c(p + "http_comp_bytes_out_total", "Bytes out of the HTTP compressor.", .column("comp_out"), http: true),
            c(p + "http_comp_bytes_bypassed_total", "Bytes not compressed for lack of resources.", .column("comp_byp"), http: true),
            c(p + "http_comp_responses_total", "HTTP responses compressed.", .column("comp_rsp"), http: true),
        ]
    }

    private static func averageTimeFamilies(_ p: String) -> [MetricFamily] {
        [
            g(p + "queue_time_average_seconds", "Average time in the queue over recent requests.", .milliseconds("qtime")),
            g(p + "connect_time_average_seconds", "Average time to connect over recent requests.", .milliseconds("ctime")),
            g(p + "response_time_average_seconds", "Average time to the response over recent requests.", .milliseconds("rtime")),
            g(p + "total_time_average_seconds", "Average total time over recent requests.", .milliseconds("ttime")),
        ]
    }

    private static func maxTimeFamilies(_ p: String) -> [MetricFamily] {
        [
            g(p + "max_queue_time_seconds", "Longest time in the queue seen.", .milliseconds("qtime_max")),
            g(p + "max_connect_time_seconds", "Longest time to connect seen.", .milliseconds("ctime_max")),
            g(p + "max_response_time_seconds", "Longest time to a response seen.", .milliseconds("rtime_max")),
            g(p + "max_total_time_seconds", "Longest total time seen.", .milliseconds("ttime_max")),
        ]
    }

    static let families: [PrometheusScope: [MetricFamily]] = [
        .global: process,
        .frontend: frontend,
        .backend: backend,
        .server: server,
    ]

    private static let process: [MetricFamily] = {
        let p = "haproxy_process_"
        return [
            g(p + "nbthread", "Event loops (threads) of the worker.", .info("Nbthread")),
            g(p + "nbproc", "Worker processes (always 1).", .info("Nbproc")),
            g(p + "relative_process_id", "Number of this worker among the workers (always 1).", .info("Process_num")),
            g(p + "uptime_seconds", "Seconds since the worker started.", .info("Uptime_sec")),
            c(p + "pool_failures_total", "Memory allocations that failed.", .info("PoolFailed")),
            g(p + "max_fds", "Limit on open file descriptors.", .info("Ulimit-n")),
            g(p + "max_sockets", "Limit on open sockets.", .info("Maxsock")),
            g(p + "max_connections", "Limit on concurrent connections (maxconn, or what the file limit allows).", .info("Maxconn")),
            g(p + "hard_max_connections", "Connection limit set at start-up.", .info("Hard_maxconn")),
            g(p + "current_connections", "Client connections open now.", .info("CurrConns")),
            c(p + "connections_total", "Client connections accepted since the worker started.", .info("CumConns")),
            c(p + "requests_total", "HTTP requests received since the worker started.", .info("CumReq")),
            g(p + "max_ssl_connections", "Limit on TLS connections (0: none).", .info("MaxSslConns")),
            g(p + "current_ssl_connections", "TLS connections open now.", .info("CurrSslConns")),
            c(p + "ssl_connections_total", "TLS connections opened since the worker started.", .info("CumSslConns")),
            g(p + "max_pipes", "Limit on pipes for splicing (0: none).", .info("Maxpipes")),
            c(p + "pipes_used_total", "Pipes in use.", .info("PipesUsed")),
            c(p + "pipes_free_total", "Pipes allocated and free.", .info("PipesFree")),
            g(p + "current_connection_rate", "Connections accepted over the last second.", .info("ConnRate")),
            g(p + "limit_connection_rate", "Limit on the connection rate (0: none).", .info("ConnRateLimit")),
            g(p + "max_connection_rate", "Highest connection rate seen, per second.", .info("MaxConnRate")),
            g(p + "current_session_rate", "Sessions created over the last second.", .info("SessRate")),
            g(p + "limit_session_rate", "Limit on the session rate (0: none).", .info("SessRateLimit")),
            g(p + "max_session_rate", "Highest session rate seen, per second.", .info("MaxSessRate")),
            g(p + "current_ssl_rate", "TLS connections opened over the last second.", .info("SslRate")),
            g(p + "limit_ssl_rate", "Limit on the TLS connection rate (0: none).", .info("SslRateLimit")),
            g(p + "max_ssl_rate", "Highest TLS connection rate seen, per second.", .info("MaxSslRate")),
            g(p + "current_frontend_ssl_key_rate", "TLS keys computed for clients over the last second.", .info("SslFrontendKeyRate")),
            g(p + "max_frontend_ssl_key_rate", "Highest rate of TLS keys computed for clients, per second.", .info("SslFrontendMaxKeyRate")),
            g(p + "frontend_ssl_reuse", "Share of client TLS connections that resumed a session, in percent.", .info("SslFrontendSessionReuse_pct")),
            g(p + "current_backend_ssl_key_rate", "TLS keys computed for servers over the last second.", .info("SslBackendKeyRate")),
            g(p + "max_backend_ssl_key_rate", "Highest rate of TLS keys computed for servers, per second.", .info("SslBackendMaxKeyRate")),
            c(p + "ssl_cache_lookups_total", "Lookups in the TLS session cache.", .info("SslCacheLookups")),
            c(p + "ssl_cache_misses_total", "Lookups in the TLS session cache that found nothing.", .info("SslCacheMisses")),
            c(p + "http_comp_bytes_in_total", "Bytes given to the HTTP compressor.", .info("CompressBpsIn")),
            c(p + "http_comp_bytes_out_total", "Bytes out of the HTTP compressor.", .info("CompressBpsOut")),
            g(p + "limit_http_comp", "Output rate above which compression stops (0: none).", .info("CompressBpsRateLim")),
            g(p + "current_zlib_memory", "Memory used by compression (no zlib in Hasp).", .none),
            g(p + "max_zlib_memory", "Limit on the memory compression uses (no zlib in Hasp).", .none),
            g(p + "current_tasks", "Tasks of the worker (connections and listeners).", .info("Tasks")),
            g(p + "current_run_queue", "Tasks waiting to run.", .info("Run_queue")),
            g(p + "idle_time_percent", "Share of the last second the event loops were idle, in percent.", .info("Idle_pct")),
            g(p + "stopping", "1 while the worker is stopping (draining), else 0.", .info("Stopping")),
            g(p + "jobs", "Active jobs: client connections, CLI connections and listeners.", .info("Jobs")),
            g(p + "unstoppable_jobs", "Jobs a soft stop does not end.", .info("Unstoppable Jobs")),
            g(p + "listeners", "Listening sockets.", .info("Listeners")),
            g(p + "active_peers", "Active peer connections.", .info("ActivePeers")),
            g(p + "connected_peers", "Peers connected.", .info("ConnectedPeers")),
            c(p + "dropped_logs_total", "Log messages dropped.", .info("DroppedLogs")),
            g(p + "busy_polling_enabled", "1 when busy polling is on, else 0.", .info("BusyPolling")),
            // HAProxy declares it a counter without the `_total` suffix, which promtool reports;
            // the name is kept for dashboards and the type says what it holds to date.
            g(p + "failed_resolutions", "DNS resolutions that failed.", .info("FailedResolutions")),
            c(p + "bytes_out_total", "Bytes sent to clients since the worker started.", .info("TotalBytesOut")),
            c(p + "spliced_bytes_out_total", "Bytes sent by splicing.", .info("TotalSplicedBytesOut")),
            g(p + "bytes_out_rate", "Bytes sent over the last second.", .info("BytesOutRate")),
            c(p + "recv_logs_total", "Log messages received by log forwarding.", .info("CumRecvLogs")),
            g(p + "build_info", "The version of the proxy, as a label.", .buildInfo),
            g(p + "max_memory_bytes", "Limit on the memory of the worker (0: none).", .infoMegabytes("Memmax_MB")),
            g(p + "pool_allocated_bytes", "Memory the worker holds.", .infoMegabytes("PoolAlloc_MB")),
            g(p + "pool_used_bytes", "Memory the worker uses.", .infoMegabytes("PoolUsed_MB")),
            g(p + "start_time_seconds", "Start of the worker, in seconds since the epoch.", .info("Start_time_sec")),
        ]
    }()

    private static let frontend: [MetricFamily] = {
        let p = "haproxy_frontend_"
        return sessionFamilies(p, limit: "maxconn") + [
            c(p + "requests_denied_total", "Requests denied by rules.", .column("dreq")),
            c(p + "responses_denied_total", "Responses denied by rules.", .column("dresp")),
            c(p + "request_errors_total", "Requests that could not be read or parsed.", .column("ereq")),
            g(p + "status", "State of the frontend: 1 for the current state.", .status(["DOWN", "UP"])),
            g(p + "limit_session_rate", "Limit on new sessions per second (rate-limit sessions).", .column("rate_lim")),
            g(p + "max_session_rate", "Highest number of new sessions per second seen.", .column("rate_max")),
            c(p + "http_responses_total", "HTTP responses by class of status code.", .responseCodes, http: true),
            g(p + "http_requests_rate_max", "Highest number of HTTP requests per second seen.", .column("req_rate_max"), http: true),
            c(p + "http_requests_total", "HTTP requests received.", .column("req_tot"), http: true),
        ] + compressionFamilies(p) + [
            g(p + "connections_rate_max", "Highest number of new connections per second seen.", .column("conn_rate_max")),
            c(p + "connections_total", "Connections accepted.", .column("conn_tot")),
            c(p + "intercepted_requests_total", "Requests answered by the proxy itself (redirects, statistics, services).", .column("intercepted"), http: true),
            c(p + "denied_connections_total", "Connections refused by tcp-request connection rules.", .column("dcon")),
            c(p + "denied_sessions_total", "Sessions refused by tcp-request session rules.", .column("dses")),
            c(p + "failed_header_rewriting_total", "Header rewrites that failed.", .column("wrew")),
            c(p + "http_cache_lookups_total", "HTTP cache lookups.", .column("cache_lookups"), http: true),
            c(p + "http_cache_hits_total", "HTTP cache hits.", .column("cache_hits"), http: true),
            c(p + "internal_errors_total", "Internal errors.", .column("eint")),
        ]
    }()

    private static let backend: [MetricFamily] = {
        let p = "haproxy_backend_"
        return queueFamilies(p) + sessionFamilies(p, limit: "fullconn") + [
            c(p + "requests_denied_total", "Requests denied by rules.", .column("dreq")),
            c(p + "responses_denied_total", "Responses denied by rules.", .column("dresp")),
            c(p + "connection_errors_total", "Connections to servers that failed.", .column("econ")),
            c(p + "response_errors_total", "Server responses that could not be read or parsed.", .column("eresp")),
            c(p + "retry_warnings_total", "Connection attempts retried.", .column("wretr")),
            c(p + "redispatch_warnings_total", "Requests sent to another server after a failure.", .column("wredis")),
            g(p + "status", "State of the backend: 1 for the current state.", .status(["DOWN", "UP"])),
            g(p + "weight", "Sum of the effective weights of the active servers.", .column("weight")),
            g(p + "active_servers", "Active servers up.", .column("act")),
            g(p + "backup_servers", "Backup servers up.", .column("bck")),
            c(p + "check_up_down_total", "Times the backend went down.", .column("chkdown")),
            g(p + "check_last_change_seconds", "Seconds since the backend last changed state.", .column("lastchg")),
            c(p + "downtime_seconds_total", "Seconds the backend spent down.", .column("downtime")),
            c(p + "loadbalanced_total", "Requests sent to a server by load balancing.", .column("lbtot")),
            g(p + "max_session_rate", "Highest number of new sessions per second seen.", .column("rate_max")),
            c(p + "http_responses_total", "HTTP responses by class of status code.", .responseCodes, http: true),
            c(p + "http_requests_total", "HTTP requests sent to the backend.", .column("req_tot"), http: true),
            c(p + "client_aborts_total", "Transfers the client aborted.", .column("cli_abrt")),
            c(p + "server_aborts_total", "Transfers the server aborted.", .column("srv_abrt")),
        ] + compressionFamilies(p) + [
            g(p + "last_session_seconds", "Seconds since the last session (-1: never).", .column("lastsess")),
        ] + averageTimeFamilies(p) + [
            c(p + "failed_header_rewriting_total", "Header rewrites that failed.", .column("wrew")),
            c(p + "connection_attempts_total", "Connection attempts to servers.", .column("connect")),
            c(p + "connection_reuses_total", "Requests sent over an idle connection reused.", .column("reuse")),
            c(p + "http_cache_lookups_total", "HTTP cache lookups.", .column("cache_lookups"), http: true),
            c(p + "http_cache_hits_total", "HTTP cache hits.", .column("cache_hits"), http: true),
        ] + maxTimeFamilies(p) + [
            c(p + "internal_errors_total", "Internal errors.", .column("eint")),
            g(p + "uweight", "Sum of the configured weights of the active servers.", .column("uweight")),
            g(p + "agg_server_status", "Servers of the backend in each state.", .serverStates),
            g(p + "agg_server_check_status", "Servers of the backend in each state (the older name).", .serverStates),
            g(p + "agg_check_status", "Servers of the backend by the result of their last check.", .checkResults),
        ]
    }()

    private static let server: [MetricFamily] = {
        let p = "haproxy_server_"
        return queueFamilies(p) + sessionFamilies(p, limit: "maxconn") + [
            c(p + "responses_denied_total", "Responses denied by rules.", .column("dresp")),
            c(p + "connection_errors_total", "Connections to this server that failed.", .column("econ")),
            c(p + "response_errors_total", "Responses that could not be read or parsed.", .column("eresp")),
            c(p + "retry_warnings_total", "Connection attempts retried.", .column("wretr")),
            c(p + "redispatch_warnings_total", "Requests sent to another server after a failure.", .column("wredis")),
            g(p + "status", "State of the server: 1 for the current state.", .status(serverStates)),
            g(p + "weight", "Effective weight.", .column("weight")),
            c(p + "check_failures_total", "Health checks that failed.", .column("chkfail")),
            c(p + "check_up_down_total", "Times the checks took the server down.", .column("chkdown")),
            g(p + "check_last_change_seconds", "Seconds since the server last changed state.", .column("lastchg")),
            c(p + "downtime_seconds_total", "Seconds the server spent down.", .column("downtime")),
            g(p + "queue_limit", "Limit on requests queued for this server (maxqueue).", .column("qlimit")),
            g(p + "current_throttle", "Slow-start throttle, in percent.", .column("throttle")),
            c(p + "loadbalanced_total", "Requests sent to this server by load balancing.", .column("lbtot")),
            g(p + "max_session_rate", "Highest number of new sessions per second seen.", .column("rate_max")),
            g(p + "check_status", "Result of the last health check: 1 for the current result.", .checkStatus),
            g(p + "check_code", "Layer 5-7 code of the last health check (0 when none).", .checkCode),
            g(p + "check_duration_seconds", "Duration of the last health check.", .checkDuration),
            c(p + "http_responses_total", "HTTP responses by class of status code.", .responseCodes, http: true),
            c(p + "client_aborts_total", "Transfers the client aborted.", .column("cli_abrt")),
            c(p + "server_aborts_total", "Transfers the server aborted.", .column("srv_abrt")),
            g(p + "last_session_seconds", "Seconds since the last session (-1: never).", .column("lastsess")),
        ] + averageTimeFamilies(p) + [
            c(p + "failed_header_rewriting_total", "Header rewrites that failed.", .column("wrew")),
            c(p + "connection_attempts_total", "Connection attempts to this server.", .column("connect")),
            c(p + "connection_reuses_total", "Requests sent over an idle connection reused.", .column("reuse")),
            g(p + "idle_connections_current", "Idle connections kept for reuse.", .column("srv_icur")),
            g(p + "idle_connections_limit", "Limit on idle connections kept (pool-max-conn).", .column("src_ilim")),
        ] + maxTimeFamilies(p) + [
            c(p + "internal_errors_total", "Internal errors.", .column("eint")),
            g(p + "unsafe_idle_connections_current", "Idle connections that may only carry idempotent requests.", .column("idle_conn_cur")),
            g(p + "safe_idle_connections_current", "Idle connections safe for any request.", .column("safe_conn_cur")),
            g(p + "used_connections_current", "Connections in use.", .column("used_conn_cur")),
            g(p + "need_connections_current", "Estimated connections needed.", .column("need_conn_est")),
            g(p + "uweight", "Configured weight.", .column("uweight")),
        ]
    }()
}
