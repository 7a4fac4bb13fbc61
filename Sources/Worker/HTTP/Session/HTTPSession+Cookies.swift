import Shared

/// What persistence decided for the current request: `force-persist`/`ignore-persist`, the
/// server the request was sent to directly (cookie, `use-server`, stick table) and what the
/// persistence cookie said.
struct ExchangePersistence {
    var force = false
    var ignore = false
    var directServer: Server?
    var clientState: ClientCookieState = .none
    var lastSeen: Int64 = 0
    var firstSeen: Int64 = 0
}

/// Cookie persistence (`cookie <name> insert|rewrite|prefix|...`, `server ... cookie <v>`):
/// the request's cookie sends the client back to its server; the response gets the cookie.
extension HTTPSession {
    /// The server persistence sends the request to, in HAProxy's order: the cookie,
    /// `use-server` rules, then stick tables; nil lets the balancer choose.
    func persistentServer(_ backend: Backend) -> Server? {
        streams.backend = backend
        applyPersistRules(backend)
        var server: Server? = nil
        if let cookie = backend.settings.cookie { server = cookieServer(backend, cookie) }
        if server == nil { server = chooseServer(backend) }
        if !backend.rules.stickRules.isEmpty {
            let sticky = stickyServer(backend, assigned: server != nil)
            if server == nil { server = sticky }
        }
        persistence.directServer = server
        if backend.settings.cookie != nil, exchangeLog != nil {
            exchangeLog!.cookieFlags = String([persistence.clientState.rawValue, ServerCookieState.none.rawValue])
        }
        return server
    }

    /// `force-persist` / `ignore-persist`: the first rule whose condition matches.
    func applyPersistRules(_ backend: Backend) {
        persistence = ExchangePersistence()
        for rule in backend.rules.persistRules where rule.condition.matches(streams) {
            if rule.kind == .force { persistence.force = true } else { persistence.ignore = true }
            break
        }
    }

    /// May a request that persists to `server` go there: running, or persistence forced.
    func persistenceAccepts(_ server: Server, _ backend: Backend) -> Bool {
        server.isRunning || backend.settings.options.persist || persistence.force
    }

    /// The server the request's persistence cookie names, if it may take the request; edits
    /// the `Cookie` lines the server will see (insert+indirect drops the cookie, prefix mode
    /// strips the server's part).
    func cookieServer(_ backend: Backend, _ cookie: CookieSettings) -> Server? {
        guard var head = request else { return nil }
        let lines = head.allValues(lowercasedName: "cookie")
        guard !lines.isEmpty else { return nil }
        let key = backend.dynamicCookieKey
        let servers = backend.servers
        let outcome = CookiePersistence.inspectRequest(
            lines: lines, settings: cookie, now: Int64(WallClock.seconds()),
            skipLookup: persistence.ignore
        ) { value -> CookieServerMatch<Server> in
            var sawDown = false
            for server in servers {
                guard let own = server.persistenceCookie(dynamicKey: key), own.utf8.elementsEqual(value.utf8) else { continue }
                if self.persistenceAccepts(server, backend) { return .server(server, running: server.isRunning) }
                sawDown = true
            }
            return sawDown ? .down : .none
        }
        persistence.clientState = outcome.state
        persistence.lastSeen = outcome.lastSeen
        persistence.firstSeen = outcome.firstSeen
        if let rewritten = outcome.rewrittenLines {
            head.rewriteLines("cookie", rewritten)
            streams.requestReplaced(by: head)
        }
        return outcome.server
    }

    /// The response side: the server's own persistence cookie is rewritten, prefixed or
    /// removed, and insert mode adds the cookie (with `Cache-control: private` for
    /// `nocache`) unless the client already holds it.
    func applyCookiePersistence(_ head: inout MessageHead, _ backend: Backend, _ server: Server, _ cookie: CookieSettings) {
        let direct = persistence.directServer === server && !dialer.redispatched
        // A valid cookie whose server failed and was replaced by redispatch reads as "down".
        if dialer.redispatched, persistence.clientState == .valid, persistence.directServer !== server {
            persistence.clientState = .down
        }
        let serverCookie = server.persistenceCookie(dynamicKey: backend.dynamicCookieKey)
        let setCookies = head.allValues(lowercasedName: "set-cookie")
        var state = ServerCookieState.none
        if !setCookies.isEmpty {
            let (lines, found) = CookiePersistence.rewriteResponse(lines: setCookies, settings: cookie, serverCookie: serverCookie,
                                                                    direct: direct, ignorePersist: persistence.ignore)
            state = found
            if let lines { head.rewriteLines("set-cookie", lines) }
        }
        let now = Int64(WallClock.seconds())
        if CookiePersistence.shouldInsert(settings: cookie, state: state, direct: direct, lastSeen: persistence.lastSeen,
                                          firstSeen: persistence.firstSeen, now: now, isPost: request?.method == "POST",
                                          ignorePersist: persistence.ignore) {
            head.addHeader("set-cookie", CookiePersistence.insertedCookie(settings: cookie, serverCookie: serverCookie,
                                                                         firstSeen: persistence.firstSeen, now: now))
            state = serverCookie != nil && direct ? .updated : .inserted
            if cookie.noCache, let method = request?.method {
                let response = head
                let cacheable = CookiePersistence.isCacheable(method: method, status: head.status) { response.allValues(lowercasedName: $0) }
                if cacheable { head.addHeader("cache-control", "private") }
            }
        }
        if exchangeLog != nil {
            exchangeLog!.cookieFlags = String([persistence.clientState.rawValue, state.rawValue])
        }
    }
}
