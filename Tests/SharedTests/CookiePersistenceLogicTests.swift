import Testing
@testable import Shared

/// The text side of cookie persistence: dates, expiry, `Cookie` line editing, the inserted
/// cookie, cacheability and XXH64.
struct CookiePersistenceLogicTests {
    func settings(_ mode: CookieSettings.Mode, indirect: Bool = false) -> CookieSettings {
        var s = CookieSettings(name: "SRV")
        s.mode = mode
        s.indirect = indirect
        return s
    }

    func inspect(_ lines: [String], _ s: CookieSettings, now: Int64 = 1_000_000, servers: [String: Bool] = ["a": true, "b": false])
        -> CookiePersistence.RequestOutcome<String> {
        CookiePersistence.inspectRequest(lines: lines, settings: s, now: now, skipLookup: false) { value in
            guard let running = servers[String(value)] else { return .none }
            return running ? .server(String(value), running: true) : .down
        }
    }

    @Test func datesRoundTripInFourSecondUnits() {
        let now: Int64 = 1_790_000_001
        let text = CookiePersistence.encodeDate(now >> 2)
        #expect(text.count == 5)
        #expect(CookiePersistence.decodeDate(Substring(text)) == (now >> 2) << 2)
        #expect(CookiePersistence.decodeDate("AA!AA") == nil)
        #expect(CookiePersistence.decodeDate("AAAAA") == nil)
    }

    @Test func maxIdleAndMaxLifeExpireCookies() {
        var s = settings(.insert)
        s.maxIdleSeconds = 60
        s.maxLifeSeconds = 3600
        let now: Int64 = 1_790_000_000
        let fresh = CookiePersistence.insertedCookie(settings: s, serverCookie: "a", firstSeen: 0, now: now)
        let value = String(fresh.split(separator: ";")[0].dropFirst(4))
        #expect(value.hasPrefix("a|") && value.count == 13, "\(fresh)")
        let back = inspect(["SRV=\(value)"], s, now: now + 30)
        #expect(back.state == .valid && back.server == "a" && back.lastSeen > 0 && back.firstSeen > 0)
        // The client still has the cookie, but it was last seen too long ago.
        #expect(inspect(["SRV=\(value)"], s, now: now + 120).state == .expired)
        #expect(inspect(["SRV=\(value)"], s, now: now + 7200).state == .old)
        // A direct request refreshes the cookie once its date has passed.
        #expect(!CookiePersistence.shouldInsert(settings: s, state: .none, direct: true, lastSeen: now + 4, firstSeen: now,
                                                now: now, isPost: false, ignorePersist: false))
        #expect(CookiePersistence.shouldInsert(settings: s, state: .none, direct: true, lastSeen: now - 8, firstSeen: now,
                                               now: now, isPost: false, ignorePersist: false))
    }

    @Test func requestStatesAndLineEditing() {
        let s = settings(.insert, indirect: true)
        #expect(inspect(["x=1"], s).state == .none)
        #expect(inspect(["SRV=zz"], s).state == .invalid)
        #expect(inspect(["SRV=b"], s).state == .down)
        let valid = inspect(["a=1; SRV=a; b=2", "SRV=a"], s)
        #expect(valid.state == .valid && valid.server == "a")
        #expect(valid.rewrittenLines! == ["a=1; b=2", nil])
        #expect(inspect(["a=1;SRV=a;b=2"], s).rewrittenLines! == ["a=1; b=2"])
        #expect(inspect(["a=1 ; SRV=a"], s).rewrittenLines! == ["a=1 "])
        #expect(inspect(["SRV=a; $Path=/; b=2"], s).rewrittenLines! == ["b=2"])
        #expect(inspect(["q=\"x;SRV=a\"; SRV=a"], s).rewrittenLines! == ["q=\"x;SRV=a\""])
        // Without indirect, the server sees the cookie.
        #expect(inspect(["SRV=a"], settings(.insert)).rewrittenLines == nil)
        // Prefix mode strips the server's part and keeps the application's value.
        var p = settings(.prefix)
        p.name = "JSESSIONID"
        let prefixed = inspect(["JSESSIONID=a~xyz; k=v"], p)
        #expect(prefixed.server == "a" && prefixed.rewrittenLines! == ["JSESSIONID=xyz; k=v"])
    }

    @Test func responseRewritingAndInsertion() {
        let rw = CookiePersistence.rewriteResponse(lines: ["SRV=app; Path=/", "other=1"], settings: settings(.rewrite), serverCookie: "s1",
                                                   direct: false, ignorePersist: false)
        #expect(rw.lines! == ["SRV=s1; Path=/", "other=1"] && rw.state == .rewritten)
        let pf = CookiePersistence.rewriteResponse(lines: ["SRV=app"], settings: settings(.prefix), serverCookie: "s1", direct: false,
                                                   ignorePersist: false)
        #expect(pf.lines! == ["SRV=s1~app"])
        let ins = CookiePersistence.rewriteResponse(lines: ["SRV=app"], settings: settings(.insert), serverCookie: "s1", direct: false,
                                                    ignorePersist: false)
        #expect(ins.lines! == [nil] && ins.state == .deleted)
        var full = settings(.insert)
        full.domains = [".a.com", ".b.com"]
        full.httpOnly = true
        full.secure = true
        full.attributes = ["SameSite=None", "Partitioned"]
        #expect(CookiePersistence.insertedCookie(settings: full, serverCookie: "s1", firstSeen: 0, now: 0)
                == "SRV=s1; path=/; domain=.a.com; domain=.b.com; HttpOnly; Secure; SameSite=None; Partitioned")
        #expect(CookiePersistence.insertedCookie(settings: settings(.insert), serverCookie: nil, firstSeen: 0, now: 0)
                == "SRV=; Expires=Thu, 01-Jan-1970 00:00:01 GMT; path=/")
    }

    @Test func cacheability() {
        func check(_ method: Substring, _ status: Int, _ headers: [String: [String]]) -> Bool {
            CookiePersistence.isCacheable(method: method, status: status) { headers[$0] ?? [] }
        }
        #expect(check("GET", 200, ["etag": ["\"x\""]]))
        #expect(!check("GET", 200, [:]))
        #expect(!check("POST", 200, ["etag": ["\"x\""]]))
        #expect(!check("GET", 302, ["etag": ["\"x\""]]))
        #expect(!check("GET", 200, ["etag": ["\"x\""], "cache-control": ["no-cache"]]))
        #expect(!check("GET", 200, ["cache-control": ["public, max-age=0"]]))
        #expect(check("GET", 200, ["cache-control": ["max-age=0, s-maxage=10"]]))
        #expect(check("POST", 200, ["cache-control": ["public, max-age=60"]]))
    }

    /// libxxhash's XXH64, as dynamic cookies use it.
    @Test func xxh64MatchesTheSpecification() {
        #expect(XXH64.hash([]) == 0xEF46_DB37_51D8_E999)
        #expect(XXH64.hash(Array("abc".utf8)) == 0x44BC_2CF5_AD77_0999)
        // Long enough for the four-lane loop.
        let long = Array("Nobody inspects the spammish repetition, at all, ever".utf8)
        #expect(XXH64.hash(long) != XXH64.hash(Array(long.dropLast())))
    }
}
