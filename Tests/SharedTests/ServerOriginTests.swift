import Testing
@testable import Shared

@Suite struct ServerOriginTests {
    func proxy(_ r: ConfigParser.Result, _ name: String) -> ProxySettings? {
        r.configuration.proxies.first { $0.name == name }
    }

    @Test func serversStartFromTheNamedOrigin() throws {
        let r = parse("""
        backend tpl
            default-server weight 7 check inter 3s
            default-server name big weight 50 maxconn 9
            server ref 127.0.0.1:80 weight 20 rise 5
        backend be
            default-server weight 3
            server plain 127.0.0.1:81
            server none 127.0.0.1:82 from none
            server fromdef 127.0.0.1:83 from be:tpl inter 1s
            server fromsrv 127.0.0.1:84 from srv:tpl/ref
            server fromnamed 127.0.0.1:85 from srv:tpl/big
            server ownbe 127.0.0.1:86 from be:
        """)
        #expect(alerts(r).isEmpty)
        let be = try #require(proxy(r, "be"))
        func server(_ n: String) -> ServerSettings? { be.servers.first { $0.name == n } }
        #expect(server("plain")?.weight == 3)
        #expect(server("none")?.weight == 1)
        #expect(server("fromdef")?.weight == 7 && server("fromdef")?.check == true && server("fromdef")?.interMs == 1000)
        #expect(server("fromsrv")?.weight == 20 && server("fromsrv")?.rise == 5 && server("fromsrv")?.address == .inet(host: "127.0.0.1", port: 84))
        #expect(server("fromnamed")?.weight == 50 && server("fromnamed")?.maxconn == 9)
        #expect(server("ownbe")?.weight == 3)
        let tpl = try #require(proxy(r, "tpl"))
        #expect(tpl.defaultServer.isDeclared && tpl.defaultServer.named.keys.sorted() == ["big"])
    }

    @Test func originErrors() {
        func first(_ line: String) -> String? { alerts(parse("backend be\n    server a 127.0.0.1:80\n" + line + "\n")).first }
        #expect(first("    server s 127.0.0.1:81 from") == "config : parsing [t.cfg:3] : 'server be/s' : from: missing value.")
        #expect(first("    server s 127.0.0.1:81 from be:nope") == "config : parsing [t.cfg:3] : 'server be/s' : from: unknown backend instance 'nope'.")
        #expect(first("    server s 127.0.0.1:81 from srv:nope/a") == "config : parsing [t.cfg:3] : 'server be/s' : from: unknown backend 'nope'.")
        #expect(first("    server s 127.0.0.1:81 from srv:zz") == "config : parsing [t.cfg:3] : 'server be/s' : from: unknown server 'zz' in backend 'be'.")
        #expect(first("    server s 127.0.0.1:81 from whatever") == "config : parsing [t.cfg:3] : 'server be/s' : invalid 'whatever' value for 'from' keyword.")
        #expect(first("    server s 127.0.0.1:81 from none from none") == "config : parsing [t.cfg:3] : 'server be/s' : 'from' keyword can only be specified once.")
        #expect(first("    default-server name") == "config : parsing [t.cfg:3] : default-server name: missing value.")
        #expect(first("    default-server name a") == "config : parsing [t.cfg:3] : default-server name 'a' conflicts with server defined at line 2.")
    }

    @Test func dynamicServersIgnoreDefaultServerUnlessAsked() throws {
        let r = parse("backend be\n    default-server weight 9\n    server a 127.0.0.1:80 weight 4\n")
        let be = try #require(proxy(r, "be"))
        let plain = try ConfigParser.dynamicServer(name: "x", words: ["127.0.0.1:90"], proxy: be).get()
        #expect(plain.weight == 1)
        let fromDefault = try ConfigParser.dynamicServer(name: "x", words: ["127.0.0.1:90", "from", "be:"], proxy: be).get()
        #expect(fromDefault.weight == 9)
        let fromServer = try ConfigParser.dynamicServer(name: "x", words: ["127.0.0.1:90", "from", "srv:a", "maxconn", "3"], proxy: be).get()
        #expect(fromServer.weight == 4 && fromServer.maxconn == 3 && fromServer.name == "x")
        #expect(throws: DynamicServerRefusal.self) { try ConfigParser.dynamicServer(name: "x", words: ["127.0.0.1:90", "from", "srv:zz"], proxy: be).get() }
    }
}
