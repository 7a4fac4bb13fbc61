import Testing
@testable import Shared

/// `stats ...` in proxy sections: HAProxy's keywords, defaults, inheritance and messages.
@Suite struct StatsConfigTests {
    static let head = """
    defaults
        mode http
        timeout client 1s
        timeout server 1s
        timeout connect 1s

    """

    func proxy(_ r: ConfigParser.Result, _ name: String) throws -> ProxySettings {
        try #require(r.configuration.proxies.first { $0.name == name })
    }

    @Test func everyKeywordIsRead() throws {
        let r = parse(Self.head + """
        global
            node edge-1
            description front tier
        listen s
            bind 127.0.0.1:8404
            stats uri /monitor
            stats realm Hasp\\ Stats
            stats auth admin:one
            stats auth ops:two
            stats refresh 5m
            stats hide-version
            stats show-legends
            stats show-modules
            stats show-node
            stats show-desc the edge
            stats scope .
            stats scope app
            stats admin if LOCALHOST

        """)
        #expect(alerts(r).isEmpty, "\(alerts(r))")
        let stats = try #require(try proxy(r, "s").stats)
        #expect(stats.uri == "/monitor")
        #expect(stats.realm == "Hasp Stats")
        #expect(stats.users.users.keys.sorted() == ["admin", "ops"] && stats.requiresAuthentication)
        #expect(stats.refreshSeconds == 300)
        #expect(stats.hideVersion && stats.showLegends && stats.showModules)
        #expect(stats.showNode == .some(nil) && stats.showDescription == .some("the edge"))
        #expect(stats.scopes == [".", "app"] && stats.adminConditions.count == 1)
        #expect(r.configuration.global.node == "edge-1" && r.configuration.global.processDescription == "front tier")
    }

    @Test func enableAloneGivesHAProxysDefaults() throws {
        let r = parse(Self.head + "listen s\n    bind 127.0.0.1:8404\n    stats enable\n")
        let stats = try #require(try proxy(r, "s").stats)
        #expect(stats.uri == "/haproxy?stats" && stats.effectiveRealm == "HAProxy Statistics" && !stats.requiresAuthentication)
        #expect(try proxy(r, "s").stats != nil)
        let none = parse(Self.head + "listen s\n    bind 127.0.0.1:8404\n")
        #expect(try proxy(none, "s").stats == nil)
    }

    @Test func proxiesInheritTheDefaultsPageUnlessTheyDeclareTheirOwn() throws {
        let r = parse("""
        defaults
            mode http
            stats uri /dstats
            stats auth a:b
        frontend inherits
            bind 127.0.0.1:8001
        frontend own
            bind 127.0.0.1:8002
            stats enable

        """)
        #expect(try proxy(r, "inherits").stats?.uri == "/dstats")
        #expect(try proxy(r, "inherits").stats?.requiresAuthentication == true)
        // A first `stats` line starts afresh: neither the URI nor the accounts of the defaults.
        #expect(try proxy(r, "own").stats?.uri == "/haproxy?stats")
        #expect(try proxy(r, "own").stats?.requiresAuthentication == false)
    }

    @Test func badLinesAreRefusedWithHAProxysMessages() {
        let cases: [(String, String)] = [
            ("stats", "missing keyword in 'stats', expects 'admin', 'uri', 'realm', 'auth', 'scope', 'enable', 'hide-version', 'show-node', 'show-desc' or 'show-legends'."),
            ("stats bogus", "unknown stats parameter 'bogus', expects 'admin'"),
            ("stats uri", "'uri' needs an URI prefix."),
            ("stats realm", "'realm' needs an realm name."),
            ("stats auth", "'auth' needs a user:password account."),
            ("stats scope", "'scope' needs a proxy name."),
            ("stats refresh abc", "unexpected character 'a' in argument to stats refresh interval."),
            ("stats admin", "'stats admin' requires either 'if' or 'unless' followed by a condition."),
            ("stats admin TRUE", "'stats admin' requires either 'if' or 'unless' followed by a condition."),
            ("stats http-request foo", "'http-request' expects 'allow'"),
            ("stats http-request auth realm", "missing realm value."),
        ]
        for (line, message) in cases {
            let r = parse(Self.head + "listen s\n    bind 127.0.0.1:8404\n    \(line)\n")
            #expect(alerts(r).contains { $0.contains("t.cfg:8") && $0.contains(message) }, "\(line): \(alerts(r))")
        }
    }

    @Test func sectionRulesAndConflicts() {
        let admin = parse("defaults\n    mode http\n    stats admin if TRUE\n")
        #expect(alerts(admin).contains { $0.contains("'stats admin' not allowed in 'defaults' section.") })
        let rules = parse("defaults\n    mode http\n    stats http-request deny\n")
        #expect(alerts(rules).contains { $0.contains("'stats' not allowed in 'defaults' section.") })
        let both = parse(Self.head + "listen s\n    bind 127.0.0.1:8404\n    stats auth a:b\n    stats http-request allow\n")
        #expect(alerts(both).contains { $0.contains("proxy 's': stats 'auth'/'realm' and 'http-request' can't be used at the same time.") })
        let tcp = parse("listen t\n    mode tcp\n    bind 127.0.0.1:8404\n    stats enable\n")
        #expect(warnings(tcp).contains { $0.contains("'stats' statement ignored for proxy 't' as it requires HTTP mode.") })
    }

    @Test func useServiceNamesThePrometheusExporterOnly() {
        let good = parse(Self.head + "frontend f\n    bind 127.0.0.1:8404\n    http-request use-service prometheus-exporter if { path /metrics }\n")
        #expect(alerts(good).isEmpty, "\(alerts(good))")
        let stats = parse(Self.head + "frontend f\n    bind 127.0.0.1:8404\n    http-request use-service stats\n")
        #expect(alerts(stats).contains { $0.contains("'stats' unknown service name..") })
        let tcp = parse(Self.head + "frontend f\n    bind 127.0.0.1:8404\n    tcp-request content use-service prometheus-exporter\n")
        #expect(alerts(tcp).contains { $0.contains("Prometheus exporter service only available on 'http-request' rulesets") })
    }
}
