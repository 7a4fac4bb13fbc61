import Foundation

/// Every sample fetch Hasp knows: one declarative table (name, arguments, output type, what it
/// reads, evaluation). Validity checks, "did you mean" hints and the man page list come
/// from it.
public enum FetchTable {
    public static let all: [FetchDefinition] = connectionFetches + tlsFetches + internalFetches + httpFetches + contentFetches
        + StickFetches.fetches
    public static let byName: [String: FetchDefinition] = {
        var table: [String: FetchDefinition] = [:]
        for f in all where table[f.name] == nil { table[f.name] = f }
        return table
    }()

    // MARK: - Layer 4 and proxies

    static let connectionFetches: [FetchDefinition] = [
        FetchDefinition("src", .address, .layer4) { c, _, _ in c.clientAddress.map { .one($0) } ?? .none },
        FetchDefinition("src_port", .int, .layer4) { c, _, _ in c.clientPort.map { .one(.int(Int64($0))) } ?? .none },
        FetchDefinition("dst", .address, .layer4) { c, _, _ in c.localAddress.map { .one($0) } ?? .none },
        FetchDefinition("dst_port", .int, .layer4) { c, _, _ in c.localPort.map { .one(.int(Int64($0))) } ?? .none },
        // The connection error of `option httpslog`: none once a stream exists.
        FetchDefinition("fc_err", .int, .layer4) { _, _, _ in .one(.int(0)) },
        FetchDefinition("fe_name", .string, .internalState) { c, _, _ in .one(.string(c.frontendName)) },
        FetchDefinition("be_name", .string, .backend) { c, _, _ in c.backendName.map { .one(.string($0)) } ?? .none },
        FetchDefinition("srv_name", .string, .server) { c, _, _ in c.serverName.map { .one(.string($0)) } ?? .none },
        FetchDefinition("fe_id", .int, .internalState) { c, _, _ in c.proxyFigure(.frontendID, proxy: nil, server: nil).map { .one(.int($0)) } ?? .none },
        FetchDefinition("be_id", .int, .backend) { c, _, _ in c.proxyFigure(.backendID, proxy: nil, server: nil).map { .one(.int($0)) } ?? .none },
        FetchDefinition("srv_id", .int, .server) { c, _, _ in c.proxyFigure(.serverID, proxy: nil, server: nil).map { .one(.int($0)) } ?? .none },
        figure("fe_conn", .frontendConnections),
        figure("be_conn", .backendConnections),
        figure("nbsrv", .usableServers),
        figure("connslots", .connectionSlots),
        figure("queue", .queued),
        figure("avg_queue", .averageQueue),
        figure("fe_req_rate", .frontendRequestRate),
        figure("be_sess_rate", .backendSessionRate),
        FetchDefinition("srv_is_up", [.string], required: 1, .bool, .internalState) { c, a, _ in
            guard let (b, s) = splitServer(a[0].string ?? "") else { return .none }
            return c.proxyFigure(.serverIsUp, proxy: b, server: s).map { .one(.bool($0 != 0)) } ?? .none
        },
        FetchDefinition("srv_conn", [.string], required: 1, .int, .internalState) { c, a, _ in
            guard let (b, s) = splitServer(a[0].string ?? "") else { return .none }
            return c.proxyFigure(.serverConnections, proxy: b, server: s).map { .one(.int($0)) } ?? .none
        },
    ]

    static func figure(_ name: String, _ figure: ProxyFigure) -> FetchDefinition {
        FetchDefinition(name, [.backend], .int, .internalState) { c, a, _ in
            c.proxyFigure(figure, proxy: a.first?.string, server: nil).map { .one(.int($0)) } ?? .none
        }
    }

    static func splitServer(_ text: String) -> (String, String)? {
        let parts = text.split(separator: "/", maxSplits: 1)
        guard parts.count == 2 else { return nil }
        return (String(parts[0]), String(parts[1]))
    }

    // MARK: - Internal

    static let internalFetches: [FetchDefinition] = [
        FetchDefinition("always_true", .bool, .internalState) { _, _, _ in .one(.bool(true)) },
        FetchDefinition("always_false", .bool, .internalState) { _, _, _ in .one(.bool(false)) },
        FetchDefinition("int", [.int], required: 1, .int, .internalState) { _, a, _ in .one(.int(a[0].int ?? 0)) },
        FetchDefinition("str", [.string], required: 1, .string, .internalState) { _, a, _ in .one(.string(a[0].string ?? "")) },
        // `bin(<hex>)`: constant bytes, checked at load.
        FetchDefinition("bin", [.string], required: 1, .binary, .internalState, check: { a in
            let text = a[0].string ?? ""
            if text.utf8.count % 2 != 0 { return "an even number of hex digit is expected" }
            if let bad = text.utf8.first(where: { Hex.digit($0) == nil }) { return "an hex digit is expected (found '\(Character(Unicode.Scalar(bad)))')" }
            return nil
        }) { _, a, _ in Hex.bytes(a[0].string ?? "").map { .one(.binary($0)) } ?? .none },
        FetchDefinition("bool", [.int], required: 1, .bool, .internalState) { _, a, _ in .one(.bool((a[0].int ?? 0) != 0)) },
        FetchDefinition("ipv4", [.string], required: 1, .ipv4, .internalState) { _, a, _ in
            IPAddressText.parseIPv4(Substring(a[0].string ?? "")).map { .one(.ipv4($0)) } ?? .none
        },
        FetchDefinition("env", [.string], required: 1, .string, .internalState) { _, a, _ in
            ProcessEnvironment.get(a[0].string ?? "").map { .one(.string($0)) } ?? .none
        },
        FetchDefinition("rand", [.int], .int, .internalState) { c, a, _ in
            let range = UInt64(max(0, a.first?.int ?? Int64(UInt32.max) + 1))
            return .one(.int(Int64(range == 0 ? 0 : c.random(below: range))))
        },
        FetchDefinition("date", [.int, .string], .int, .internalState) { c, a, _ in
            var now = c.epochSeconds &+ (a.first?.int ?? 0)
            switch a.count > 1 ? a[1].string ?? "s" : "s" {
            case "ms": now = now &* 1000
            case "us": now = now &* 1_000_000
            default: break
            }
            return .one(.int(now))
        },
        FetchDefinition("var", [.variable, .string], required: 1, .any, .internalState) { c, a, _ in
            guard case .variable(let name) = a[0] else { return .none }
            if let v = c.variable(name) { return .one(v) }
            if a.count > 1, let d = a[1].string { return .one(.string(d)) }
            return .none
        },
        FetchDefinition("nbproc", .int, .internalState) { _, _, _ in .one(.int(1)) },
        FetchDefinition("proc", .int, .internalState) { _, _, _ in .one(.int(1)) },
        FetchDefinition("thread", .int, .internalState) { _, _, _ in .one(.int(0)) },
        FetchDefinition("hostname", .string, .internalState) { _, _, _ in .one(.string(ProcessInfo.processInfo.hostName)) },
        FetchDefinition("pid", .int, .internalState) { _, _, _ in .one(.int(Int64(ProcessInfo.processInfo.processIdentifier))) },
        FetchDefinition("uuid", [.int], .string, .internalState) { _, _, _ in .one(.string(UUID().uuidString.lowercased())) },
        FetchDefinition("unique-id", .string, .httpRequest) { c, _, _ in c.uniqueID.map { .one(.string($0)) } ?? .none },
    ]

    // MARK: - HTTP

    /// `lines` are the values of the header's lines; `split` cuts them at commas.
    static func header(_ occurrence: Int64?, split: Bool, lines: [String], all: Bool) -> FetchResult {
        if lines.isEmpty { return .none }
        // The common case: one line, one value.
        if occurrence == nil || occurrence == 0, lines.count == 1,
           !split || !lines[0].withBytesInPlace({ $0.contains(UInt8(ascii: ",")) }) {
            return .one(.string(lines[0]))
        }
        var values: [String] = []
        for line in lines {
            if split, line.utf8.contains(UInt8(ascii: ",")) {
                for part in line.utf8.split(separator: UInt8(ascii: ","), omittingEmptySubsequences: false) {
                    values.append(String(Substring(part).trimmingBlanks()))
                }
            } else {
                values.append(line)
            }
        }
        if let occurrence, occurrence != 0 {
            let index = occurrence > 0 ? Int(occurrence) - 1 : values.count + Int(occurrence)
            guard index >= 0, index < values.count else { return .none }
            return .one(.string(values[index]))
        }
        if values.isEmpty { return .none }
        return all ? .many(values.map { .string($0) }) : .one(.string(values[values.count - 1]))
    }

    static func headerCount(_ name: String?, split: Bool, response: Bool, _ c: SampleContext) -> Int64 {
        guard let name else { return Int64((response ? c.responseHeaderLines : c.requestHeaderLines).count) }
        var n: Int64 = 0
        for value in c.headerValues(name, response: response) {
            n += split ? Int64(value.split(separator: ",", omittingEmptySubsequences: false).count) : 1
        }
        return n
    }

    static func requestHeader(_ split: Bool) -> @Sendable (SampleContext, [SampleArgument], Bool) -> FetchResult {
        { c, a, all in
            guard let name = a.first?.string else {
                // Without a name: every header line's value.
                let values = c.requestHeaderLines.map { SampleValue.string($0.value) }
                return values.isEmpty ? .none : (all ? .many(values) : .one(values[values.count - 1]))
            }
            let occurrence = a.count > 1 ? a[1].int : nil
            if occurrence == nil || occurrence == 0 {
                // Read in place where the context can: a string per value and a list only for
                // a header with several (`hdr(host)` is one value, asked on every request).
                var last: String?
                var every: [SampleValue] = []
                let readInPlace = name.withBytesInPlace { w in
                    c.anyRequestHeaderValue(named: w, split: split) { value in
                        if all, let last { every.append(.string(last)) }
                        last = String(decoding: value, as: UTF8.self)
                        return false
                    }
                }
                if readInPlace != nil {
                    guard let last else { return .none }
                    if every.isEmpty { return .one(.string(last)) }
                    every.append(.string(last))
                    return .many(every)
                }
            }
            return header(occurrence, split: split, lines: c.headerValues(name, response: false), all: all)
        }
    }

    /// `req.hdr` and `res.hdr`, made once (`hdr` picks one of them per evaluation).
    static let requestHeaderValues = requestHeader(true)
    static let responseHeaderValues = responseHeader(true)

    static func responseHeader(_ split: Bool) -> @Sendable (SampleContext, [SampleArgument], Bool) -> FetchResult {
        { c, a, all in
            guard let name = a.first?.string else {
                let values = c.responseHeaderLines.map { SampleValue.string($0.value) }
                return values.isEmpty ? .none : (all ? .many(values) : .one(values[values.count - 1]))
            }
            return header(a.count > 1 ? a[1].int : nil, split: split, lines: c.headerValues(name, response: true), all: all)
        }
    }

    static func map(_ result: FetchResult, _ transform: (SampleValue) -> SampleValue?) -> FetchResult {
        switch result {
        case .none: return .none
        case .one(let v): return transform(v).map { .one($0) } ?? .none
        case .many(let all): return .many(all.compactMap(transform))
        }
    }

    static func cookies(_ name: String?, lines: [String], all: Bool, setCookie: Bool) -> FetchResult {
        var values: [String] = []
        for line in lines {
            let items: [Substring] = setCookie ? [line.split(separator: ";", maxSplits: 1, omittingEmptySubsequences: false)[0]]
                : line.split(separator: ";", omittingEmptySubsequences: false)
            for item in items {
                let trimmed = Substring(item).trimmingBlanks()
                let parts = trimmed.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
                guard parts.count == 2 else { continue }
                if let name, parts[0] != name { continue }
                values.append(String(parts[1]))
            }
        }
        if values.isEmpty { return .none }
        // One value: the last occurrence of a named request cookie, else the first one (a
        // response's, or any cookie when no name is given), as in HAProxy.
        return all ? .many(values.map { .string($0) }) : .one(.string(setCookie || name == nil ? values[0] : values[values.count - 1]))
    }

    static let httpFetches: [FetchDefinition] = [
        FetchDefinition("method", .method, .httpRequest) { c, _, _ in c.requestMethod.map { .one(.string($0)) } ?? .none },
        FetchDefinition("path", .string, .httpRequestHeaders) { c, _, _ in
            c.requestPath.map { .one(.string($0)) } ?? .none
        },
        FetchDefinition("pathq", .string, .httpRequestHeaders) { c, _, _ in
            c.requestTarget.flatMap { URLParts.pathAndQuery($0) }.map { .one(.string(String($0))) } ?? .none
        },
        FetchDefinition("query", .string, .httpRequestHeaders) { c, _, _ in
            c.requestTarget.flatMap { URLParts.query($0) }.map { .one(.string(String($0))) } ?? .none
        },
        FetchDefinition("url", .string, .httpRequestHeaders) { c, _, _ in c.requestTarget.map { .one(.string($0)) } ?? .none },
        FetchDefinition("uri", .string, .httpRequestHeaders) { c, _, _ in c.requestTarget.map { .one(.string($0)) } ?? .none },
        FetchDefinition("url_ip", .ipv4, .httpRequestHeaders) { c, _, _ in
            c.requestTarget.flatMap { URLParts.authority($0) }.flatMap { IPAddressText.parseIPv4($0.split(separator: ":")[0]) }
                .map { .one(.ipv4($0)) } ?? .none
        },
        FetchDefinition("url_port", .int, .httpRequestHeaders) { c, _, _ in
            guard let target = c.requestTarget else { return .none }
            guard let authority = URLParts.authority(target) else { return .one(.int(80)) }
            let parts = authority.split(separator: ":")
            return .one(.int(parts.count == 2 ? Int64(parts[1]) ?? 80 : 80))
        },
        FetchDefinition("url_param", [.string, .string], .string, .httpRequestHeaders) { c, a, all in
            guard let query = c.requestTarget.flatMap({ URLParts.query($0) }) else { return .none }
            let delimiter = a.count > 1 ? a[1].string?.first ?? "&" : "&"
            let values = URLParts.parameters(query, name: a.first?.string, delimiter: delimiter)
            if values.isEmpty { return .none }
            return all ? .many(values.map { .string(String($0)) }) : .one(.string(String(values[0])))
        },
        FetchDefinition("base", .string, .httpRequestHeaders) { c, _, _ in
            guard let target = c.requestTarget, let path = URLParts.path(target) else { return .none }
            guard let host = c.headerValues("host", response: false).last else { return .one(.string(String(path))) }
            return .one(.string(host + path))
        },
        FetchDefinition("req.ver", .string, .httpRequestHeaders) { c, _, _ in c.requestVersion.map { .one(.string($0)) } ?? .none },
        FetchDefinition("req_ver", .string, .httpRequestHeaders) { c, _, _ in c.requestVersion.map { .one(.string($0)) } ?? .none },
        // `hdr` and `cookie` read the request in request rules and the response in response
        // rules (`readsResponse`).
        FetchDefinition("hdr", [.headerName, .int], .string, .eitherHeaders) { c, a, all in
            c.readsResponse ? responseHeaderValues(c, a, all) : requestHeaderValues(c, a, all)
        },
        FetchDefinition("cookie", [.string], .string, .eitherHeaders) { c, a, all in
            c.readsResponse
                ? cookies(a.first?.string, lines: c.headerValues("set-cookie", response: true), all: all, setCookie: true)
                : cookies(a.first?.string, lines: c.headerValues("cookie", response: false), all: all, setCookie: false)
        },
        FetchDefinition("req.hdr", [.headerName, .int], .string, .httpRequestHeaders, requestHeaderValues),
        FetchDefinition("fhdr", [.headerName, .int], .string, .httpRequestHeaders, requestHeader(false)),
        FetchDefinition("req.fhdr", [.headerName, .int], .string, .httpRequestHeaders, requestHeader(false)),
        FetchDefinition("hdr_cnt", [.headerName], .int, .httpRequestHeaders) { c, a, _ in
            .one(.int(headerCount(a.first?.string, split: true, response: false, c)))
        },
        FetchDefinition("req.hdr_cnt", [.headerName], .int, .httpRequestHeaders) { c, a, _ in
            .one(.int(headerCount(a.first?.string, split: true, response: false, c)))
        },
        FetchDefinition("req.fhdr_cnt", [.headerName], .int, .httpRequestHeaders) { c, a, _ in
            .one(.int(headerCount(a.first?.string, split: false, response: false, c)))
        },
        FetchDefinition("hdr_val", [.headerName, .int], .int, .httpRequestHeaders) { c, a, all in
            map(requestHeader(true)(c, a, all)) { $0.asInt.map { .int($0) } }
        },
        FetchDefinition("req.hdr_val", [.headerName, .int], .int, .httpRequestHeaders) { c, a, all in
            map(requestHeader(true)(c, a, all)) { $0.asInt.map { .int($0) } }
        },
        FetchDefinition("hdr_ip", [.headerName, .int], .address, .httpRequestHeaders) { c, a, all in
            map(requestHeader(true)(c, a, all)) { $0.cast(to: .address) }
        },
        FetchDefinition("req.hdr_ip", [.headerName, .int], .address, .httpRequestHeaders) { c, a, all in
            map(requestHeader(true)(c, a, all)) { $0.cast(to: .address) }
        },
        FetchDefinition("req.hdrs", .string, .httpRequestHeaders) { c, _, _ in
            .one(.string(c.requestHeaderLines.map { "\($0.name): \($0.value)\r\n" }.joined() + "\r\n"))
        },
        FetchDefinition("req.cook", [.string], .string, .httpRequestHeaders) { c, a, all in
            cookies(a.first?.string, lines: c.headerValues("cookie", response: false), all: all, setCookie: false)
        },
        FetchDefinition("cook", [.string], .string, .httpRequestHeaders) { c, a, all in
            cookies(a.first?.string, lines: c.headerValues("cookie", response: false), all: all, setCookie: false)
        },
        FetchDefinition("req.cook_cnt", [.string], .int, .httpRequestHeaders) { c, a, _ in
            if case .many(let v) = cookies(a.first?.string, lines: c.headerValues("cookie", response: false), all: true, setCookie: false) {
                return .one(.int(Int64(v.count)))
            }
            return .one(.int(0))
        },
        FetchDefinition("cook_cnt", [.string], .int, .httpRequestHeaders) { c, a, _ in
            if case .many(let v) = cookies(a.first?.string, lines: c.headerValues("cookie", response: false), all: true, setCookie: false) {
                return .one(.int(Int64(v.count)))
            }
            return .one(.int(0))
        },
        FetchDefinition("req.cook_val", [.string], .int, .httpRequestHeaders) { c, a, all in
            map(cookies(a.first?.string, lines: c.headerValues("cookie", response: false), all: all, setCookie: false)) {
                $0.asInt.map { .int($0) }
            }
        },
        FetchDefinition("req.body", .binary, .httpRequestHeaders) { c, _, _ in c.requestBody.map { .one(.binary($0)) } ?? .none },
        FetchDefinition("req.body_len", .int, .httpRequestHeaders) { c, _, _ in c.requestBody.map { .one(.int(Int64($0.count))) } ?? .none },
        FetchDefinition("req.body_size", .int, .httpRequestHeaders) { c, _, _ in c.requestBody.map { .one(.int(Int64($0.count))) } ?? .none },
        FetchDefinition("req.body_param", [.string], .string, .httpRequestHeaders) { c, a, all in
            guard let body = c.requestBody else { return .none }
            let values = URLParts.parameters(Substring(String(decoding: body, as: UTF8.self)), name: a.first?.string, delimiter: "&")
            if values.isEmpty { return .none }
            return all ? .many(values.map { .string(String($0)) }) : .one(.string(String(values[0])))
        },
        FetchDefinition("http_auth", [.userlist], required: 1, .bool, .httpRequestHeaders) { c, a, _ in
            guard let list = c.userlist(named: a[0].string ?? "") else { return .one(.bool(false)) }
            return .one(.bool(BasicAuth.authenticate(c.headerValues("authorization", response: false), in: list) != nil))
        },
        FetchDefinition("http_auth_group", [.userlist], required: 1, .string, .httpRequestHeaders) { c, a, _ in
            guard let list = c.userlist(named: a[0].string ?? ""),
                  let user = BasicAuth.authenticate(c.headerValues("authorization", response: false), in: list) else { return .none }
            return .one(.string(user))
        },
        FetchDefinition("http_auth_user", .string, .httpRequestHeaders) { c, _, _ in
            BasicAuth.credentials(c.headerValues("authorization", response: false)).map { .one(.string($0.user)) } ?? .none
        },
        FetchDefinition("http_auth_pass", .string, .httpRequestHeaders) { c, _, _ in
            BasicAuth.credentials(c.headerValues("authorization", response: false)).map { .one(.string($0.password)) } ?? .none
        },
        FetchDefinition("http_auth_type", .string, .httpRequestHeaders) { c, _, _ in
            guard let s = c.headerValues("authorization", response: false).last else { return .none }
            return .one(.string(String(s.prefix { $0 != " " })))
        },
        FetchDefinition("capture.req.hdr", [.int], required: 1, .string, .httpRequest) { c, a, _ in
            c.capturedRequestHeader(Int(a[0].int ?? 0)).map { .one(.string($0)) } ?? .none
        },
        FetchDefinition("capture.res.hdr", [.int], required: 1, .string, .httpResponse) { c, a, _ in
            c.capturedResponseHeader(Int(a[0].int ?? 0)).map { .one(.string($0)) } ?? .none
        },
        FetchDefinition("capture.req.method", .string, .httpRequest) { c, _, _ in c.requestMethod.map { .one(.string($0)) } ?? .none },
        FetchDefinition("capture.req.uri", .string, .httpRequest) { c, _, _ in c.requestTarget.map { .one(.string($0)) } ?? .none },
        FetchDefinition("capture.req.ver", .string, .httpRequest) { c, _, _ in c.requestVersion.map { .one(.string("HTTP/" + $0)) } ?? .none },
        FetchDefinition("status", .int, .httpResponse) { c, _, _ in c.responseStatus.map { .one(.int(Int64($0))) } ?? .none },
        FetchDefinition("res.hdr", [.headerName, .int], .string, .httpResponseHeaders, responseHeaderValues),
        FetchDefinition("shdr", [.headerName, .int], .string, .httpResponseHeaders, responseHeaderValues),
        FetchDefinition("res.fhdr", [.headerName, .int], .string, .httpResponseHeaders, responseHeader(false)),
        FetchDefinition("res.hdr_cnt", [.headerName], .int, .httpResponseHeaders) { c, a, _ in
            .one(.int(headerCount(a.first?.string, split: true, response: true, c)))
        },
        FetchDefinition("res.hdr_val", [.headerName, .int], .int, .httpResponseHeaders) { c, a, all in
            map(responseHeader(true)(c, a, all)) { $0.asInt.map { .int($0) } }
        },
        FetchDefinition("res.cook", [.string], .string, .httpResponseHeaders) { c, a, all in
            cookies(a.first?.string, lines: c.headerValues("set-cookie", response: true), all: all, setCookie: true)
        },
        FetchDefinition("scook", [.string], .string, .httpResponseHeaders) { c, a, all in
            cookies(a.first?.string, lines: c.headerValues("set-cookie", response: true), all: all, setCookie: true)
        },
        FetchDefinition("res.ver", .string, .httpResponseHeaders) { c, _, _ in c.responseStatus != nil ? .one(.string("1.1")) : .none },
    ]

    // MARK: - Request contents (TCP inspection)

    static let contentFetches: [FetchDefinition] = [
        FetchDefinition("req.len", .int, .requestContent) { c, _, _ in .one(.int(Int64(c.requestPayload?.count ?? 0))) },
        FetchDefinition("req_len", .int, .requestContent) { c, _, _ in .one(.int(Int64(c.requestPayload?.count ?? 0))) },
        FetchDefinition("req.payload", [.int, .int], required: 2, .binary, .requestContent) { c, a, _ in
            guard let p = c.requestPayload else { return .none }
            let offset = Int(a[0].int ?? 0), length = Int(a[1].int ?? 0)
            guard offset >= 0, length >= 0, offset <= p.count else { return .none }
            let end = length == 0 ? p.count : offset &+ length
            guard end <= p.count, offset <= end else { return .none }
            return .one(.binary(Array(p[offset..<end])))
        },
        FetchDefinition("req.ssl_sni", .string, .requestContent) { c, _, _ in
            c.requestPayload.flatMap { TLSClientHello.serverName($0) }.map { .one(.string($0)) } ?? .none
        },
        FetchDefinition("req_ssl_sni", .string, .requestContent) { c, _, _ in
            c.requestPayload.flatMap { TLSClientHello.serverName($0) }.map { .one(.string($0)) } ?? .none
        },
        FetchDefinition("req.ssl_hello_type", .int, .requestContent) { c, _, _ in
            c.requestPayload.flatMap { TLSClientHello.handshakeType($0) }.map { .one(.int(Int64($0))) } ?? .none
        },
        FetchDefinition("req_ssl_hello_type", .int, .requestContent) { c, _, _ in
            c.requestPayload.flatMap { TLSClientHello.handshakeType($0) }.map { .one(.int(Int64($0))) } ?? .none
        },
        FetchDefinition("req.ssl_ver", .int, .requestContent) { c, _, _ in
            c.requestPayload.flatMap { TLSClientHello.recordVersion($0) }.map { .one(.int(Int64($0))) } ?? .none
        },
        FetchDefinition("req.proto_http", .bool, .requestContent) { c, _, _ in
            .one(.bool(c.requestMethod != nil))
        },
    ]
}

/// The pieces of a byte string between separators, as header values and cookie lines are cut.
public enum BytePieces {
    /// Offers each piece of `bytes` between `separator`s (empty ones included), spaces and tabs
    /// around it trimmed, to `body` in order until it returns true; whether one did.
    public static func anyTrimmed(_ bytes: UnsafeBufferPointer<UInt8>, separatedBy separator: UInt8,
                                  _ body: (UnsafeBufferPointer<UInt8>) -> Bool) -> Bool {
        var start = 0
        while true {
            var end = start
            while end < bytes.count, bytes[end] != separator { end += 1 }
            var a = start, b = end
            while a < b, bytes[a] == 32 || bytes[a] == 9 { a += 1 }
            while b > a, bytes[b - 1] == 32 || bytes[b - 1] == 9 { b -= 1 }
            if body(UnsafeBufferPointer(rebasing: bytes[a..<b])) { return true }
            if end >= bytes.count { return false }
            start = end + 1
        }
    }
}

extension Substring {
    /// Without leading and trailing spaces and tabs (on the UTF-8 bytes).
    public func trimmingBlanks() -> Substring {
        let u = utf8
        var start = u.startIndex, end = u.endIndex
        while start != end, u[start] == 32 || u[start] == 9 { start = u.index(after: start) }
        while end != start {
            let before = u.index(before: end)
            guard u[before] == 32 || u[before] == 9 else { break }
            end = before
        }
        return self[start..<end]
    }
}

/// The parts of a request target, found on its UTF-8 bytes (no Character walking: rules read
/// them for every request).
public enum URLParts {
    /// The offset just past `scheme://` of an absolute target, if it is one.
    static func authorityStart(_ u: String.UTF8View) -> String.Index? {
        var i = u.startIndex
        var sawColon = false
        while i != u.endIndex {
            let c = u[i]
            if c == UInt8(ascii: "/") || c == UInt8(ascii: "?") { break }
            if c == UInt8(ascii: ":") {
                let a = u.index(after: i)
                guard a != u.endIndex, u[a] == UInt8(ascii: "/") else { return nil }
                let b = u.index(after: a)
                guard b != u.endIndex, u[b] == UInt8(ascii: "/") else { return nil }
                sawColon = true
                i = u.index(after: b)
                break
            }
            i = u.index(after: i)
        }
        return sawColon ? i : nil
    }

    /// `scheme://authority` of an absolute target, the whole prefix (empty for an origin form).
    public static func schemeAndAuthority(_ target: String) -> Substring {
        guard let authority = authority(target) else { return "" }
        return target[target.startIndex..<authority.endIndex]
    }

    /// `scheme://authority` of an absolute target: the authority.
    public static func authority(_ target: String) -> Substring? {
        let u = target.utf8
        guard let start = authorityStart(u) else { return nil }
        var end = start
        while end != u.endIndex, u[end] != UInt8(ascii: "/"), u[end] != UInt8(ascii: "?") { end = u.index(after: end) }
        return target[start..<end]
    }

    /// The path and query: the target without scheme and authority.
    public static func pathAndQuery(_ target: String) -> Substring? {
        let u = target.utf8
        guard let first = u.first else { return Substring(target) }
        if first == UInt8(ascii: "/") || first == UInt8(ascii: "*") { return Substring(target) }
        guard let start = authorityStart(u) else { return Substring(target) }
        var i = start
        while i != u.endIndex, u[i] != UInt8(ascii: "/"), u[i] != UInt8(ascii: "?") { i = u.index(after: i) }
        return target[i...]
    }

    public static func path(_ target: String) -> Substring? {
        guard let pq = pathAndQuery(target) else { return nil }
        guard let q = questionMark(in: pq.utf8) else { return pq }
        return pq[pq.startIndex..<q]
    }

    public static func query(_ target: String) -> Substring? {
        let u = target.utf8
        guard let q = questionMark(in: Substring(target).utf8) else { return nil }
        return target[u.index(after: q)...]
    }

    /// The first `?`, found in the contiguous bytes where the string has them: the generic
    /// `firstIndex(of:)` steps through the view an index at a time, on every request that
    /// reads a path.
    @inline(__always)
    static func questionMark(in u: Substring.UTF8View) -> String.Index? {
        if let offset = u.withContiguousStorageIfAvailable({ $0.firstIndex(of: UInt8(ascii: "?")) ?? -1 }) {
            return offset < 0 ? nil : u.index(u.startIndex, offsetBy: offset)
        }
        return u.firstIndex(of: UInt8(ascii: "?"))
    }

    /// The values of `name` (every parameter without a name) in a query string.
    static func parameters(_ query: Substring, name: String?, delimiter: Character) -> [Substring] {
        var out: [Substring] = []
        for item in query.split(separator: delimiter, omittingEmptySubsequences: true) {
            let parts = item.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            if let name, parts[0] != name { continue }
            out.append(parts.count == 2 ? parts[1] : "")
        }
        return out
    }
}

/// `Authorization: Basic` credentials against a userlist.
public enum BasicAuth {
    /// `values`: the `Authorization` header's lines.
    public static func credentials(_ values: [String]) -> (user: String, password: String)? {
        guard let line = values.first else { return nil }
        let parts = line.split(separator: " ", maxSplits: 1)
        guard parts.count == 2, parts[0].lowercased() == "basic",
              let data = Data(base64Encoded: String(parts[1].trimmingBlanks())) else { return nil }
        let text = String(decoding: data, as: UTF8.self)
        guard let colon = text.firstIndex(of: ":") else { return nil }
        return (String(text[text.startIndex..<colon]), String(text[text.index(after: colon)...]))
    }

    /// The user name when the credentials are valid in `list`.
    public static func authenticate(_ values: [String], in list: Userlist) -> String? {
        guard let (user, password) = credentials(values), let entry = list.users[user] else { return nil }
        if entry.isHashed {
            guard let hashed = PasswordHash.crypt(password, setting: entry.password), hashed == entry.password else { return nil }
        } else if entry.password != password {
            return nil
        }
        return user
    }
}

/// Reads a TLS ClientHello from the first bytes of a connection.
public enum TLSClientHello {
    public static func recordVersion(_ p: [UInt8]) -> Int? {
        guard p.count >= 5, p[0] == 22 else { return nil }
        return Int(p[1]) << 8 | Int(p[2])
    }

    /// 1 for a ClientHello (`req_ssl_hello_type`), 2 for a ServerHello.
    public static func handshakeType(_ p: [UInt8]) -> Int? {
        guard p.count >= 6, p[0] == 22 else { return nil }
        return Int(p[5])
    }

    public static func serverName(_ p: [UInt8]) -> String? {
        guard p.count >= 9, p[0] == 22, p[5] == 1 else { return nil }
        var i = 9 + 2 + 32  // record + handshake headers, version, random
        guard i < p.count else { return nil }
        i += 1 + Int(p[i])  // session id
        guard i + 2 <= p.count else { return nil }
        i += 2 + (Int(p[i]) << 8 | Int(p[i + 1]))  // cipher suites
        guard i < p.count else { return nil }
        i += 1 + Int(p[i])  // compression methods
        guard i + 2 <= p.count else { return nil }
        let end = min(p.count, i + 2 + (Int(p[i]) << 8 | Int(p[i + 1])))
        i += 2
        while i + 4 <= end {
            let type = Int(p[i]) << 8 | Int(p[i + 1])
            let length = Int(p[i + 2]) << 8 | Int(p[i + 3])
            i += 4
            if type == 0, i + 5 <= end {
                // server_name list: length(2), type(1)=0 host_name, length(2), name
                let nameLength = Int(p[i + 3]) << 8 | Int(p[i + 4])
                guard p[i + 2] == 0, i + 5 + nameLength <= end else { return nil }
                return String(decoding: p[(i + 5)..<(i + 5 + nameLength)], as: UTF8.self)
            }
            i += length
        }
        return nil
    }
}
