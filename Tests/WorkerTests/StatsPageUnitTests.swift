import Testing
@testable import Worker

/// The pure parts of the statistics page and the exporter: request options, admin forms,
/// scrape queries, status colours, value formats, the rendered page.
@Suite struct StatsPageUnitTests {
    @Test func statsURIIsAPrefixOfPathAndQueryForThreeMethods() {
        #expect(StatsRequest.matches(method: "GET", target: "/stats", uri: "/stats"))
        #expect(StatsRequest.matches(method: "HEAD", target: "/statsX?x", uri: "/stats"))
        #expect(StatsRequest.matches(method: "POST", target: "http://h:80/stats;csv", uri: "/stats"))
        #expect(StatsRequest.matches(method: "GET", target: "/haproxy?stats;up", uri: "/haproxy?stats"))
        #expect(!StatsRequest.matches(method: "GET", target: "/haproxy?", uri: "/haproxy?stats"))
        #expect(!StatsRequest.matches(method: "PUT", target: "/stats", uri: "/stats"))
        #expect(!StatsRequest.matches(method: "GET", target: "/STATS", uri: "/stats"))
        #expect(!StatsRequest.matches(method: "GET", target: "/x/stats", uri: "/stats"))
    }

    @Test func optionsAnywhereAfterThePrefixWithHAProxysPrecedence() {
        let r = StatsRequest.parse(target: "/stats/foo;up;norefresh;csv?scope=app", uri: "/stats")
        #expect(r.upOnly && r.noRefresh && r.format == .csv && r.scope == "app")
        #expect(StatsRequest.parse(target: "/stats;csv;json", uri: "/stats").format == .json)
        #expect(StatsRequest.parse(target: "/stats;typed;csv", uri: "/stats").format == .typed)
        #expect(StatsRequest.parse(target: "/stats;csv;json-schema", uri: "/stats").format == .jsonSchema)
        #expect(StatsRequest.parse(target: "/stats;CSV", uri: "/stats").format == .html)
        #expect(StatsRequest.parse(target: "/stats;st=DONEX", uri: "/stats").outcome == .done)
        #expect(StatsRequest.parse(target: "/stats;st=abcd", uri: "/stats").outcome == .unknown)
        #expect(StatsRequest.parse(target: "/stats;st=DON", uri: "/stats").outcome == nil)
        // The scope: up to 20 name characters; anything else voids it.
        #expect(StatsRequest.parse(target: "/stats?scope=abcdefghijklmnopqrstuvwxyz", uri: "/stats").scope == "abcdefghijklmnopqrst")
        #expect(StatsRequest.parse(target: "/stats?scope=a%20b", uri: "/stats").scope == nil)
        #expect(StatsRequest.parse(target: "/stats?scope=", uri: "/stats").scope == nil)
        let scoped = StatsRequest.parse(target: "/stats?scope=APP", uri: "/stats")
        #expect(scoped.scopeIncludes("app2") && !scoped.scopeIncludes("web"))
        #expect(scoped.suffix(upOnly: true) == ";up?scope=APP")
    }

    @Test func adminFormsAreReadInAnyOrder() {
        let f = StatsAdminForm.parse(Array("s=s1&action=maint&s=s%32&b=%236&&junk&s=".utf8))
        #expect(f.servers == ["s1", "s2", ""] && f.action == "maint" && f.backend == "#6" && !f.oversized)
        let last = StatsAdminForm.parse(Array("b=one&b=two".utf8))
        #expect(last.backend == "two")
        let long = StatsAdminForm.parse(Array(("s=" + String(repeating: "x", count: 2048)).utf8))
        #expect(long.oversized)
        #expect(StatsAdminAction.allCases.map(\.rawValue) == ["ready", "drain", "maint", "dhlth", "ehlth", "hrunn", "hnolb", "hdown",
                                                             "dagent", "eagent", "arunn", "adown", "shutdown"])
    }

    @Test func scrapeQueries() {
        #expect(PrometheusQuery.parse(nil)?.scopes == Set(PrometheusScope.allCases))
        #expect(PrometheusQuery.parse("foo=bar")?.scopes == Set(PrometheusScope.allCases))
        #expect(PrometheusQuery.parse("scope=server&scope=global")?.scopes == [.server, .global])
        #expect(PrometheusQuery.parse("scope=global&scope=")?.scopes == [])
        #expect(PrometheusQuery.parse("scope=&scope=global")?.scopes == [.global])
        #expect(PrometheusQuery.parse("scope=*bogus")?.scopes == Set(PrometheusScope.allCases))
        #expect(PrometheusQuery.parse("scope=%73erver")?.scopes == [.server])
        #expect(PrometheusQuery.parse("no-maint=0")?.noMaintenance == true)
        #expect(PrometheusQuery.parse("scope=all") == nil)
        #expect(PrometheusQuery.parse("scope") == nil)
        #expect(PrometheusQuery.parse("scope=server=x") == nil)
        #expect(PrometheusQuery.parse("scope=SERVER") == nil)
        #expect(PrometheusQuery.parse("scope=global#scope=bogus")?.scopes == [.global])
    }

    @Test func valuesAndStates() {
        #expect(PrometheusExposition.seconds("7") == "0.007000")
        #expect(PrometheusExposition.seconds("12345") == "12.345000")
        #expect(PrometheusExposition.seconds("") == "NaN")
        #expect(PrometheusExposition.number("") == "NaN" && PrometheusExposition.number("-1") == "-1")
        #expect(PrometheusExposition.checkResult("* L7OK") == "L7OK")
        var row = StatReport.Row(object: .server, proxyID: 1, id: 1)
        for (status, state) in [("UP", "UP"), ("UP 2/3", "UP"), ("no check", "UP"), ("DOWN", "DOWN"), ("DOWN 1/2", "DOWN"),
                                ("MAINT", "MAINT"), ("MAINT (via a/b)", "MAINT"), ("DRAIN", "DRAIN"), ("NOLB", "NOLB")] {
            row["status"] = status
            #expect(PrometheusExposition.state(row) == state, "\(status)")
        }
        let classes: [(String, Bool, String)] = [
            ("UP", false, "active_up"), ("UP 2/3", false, "active_going_down"), ("DOWN 1/2", true, "backup_going_up"),
            ("DOWN", false, "active_down"), ("DOWN (agent)", true, "backup_down"), ("no check", true, "backup_no_check"),
            ("MAINT", true, "maintain"), ("DRAIN", false, "active_draining"), ("NOLB 1/3", true, "backup_draining"),
        ]
        for (status, backup, css) in classes { #expect(StatsHTML.statusClass(status, backup: backup) == css, "\(status)") }
        #expect(StatsHTML.escape("<a href=\"x\">&'</a>") == "&lt;a href=&quot;x&quot;&gt;&amp;&#39;&lt;/a&gt;")
        #expect(StatsHTML.bytes("999") == "999" && StatsHTML.bytes("123456") == "123k" && StatsHTML.bytes("98765432") == "99M")
    }

    @Test func pageRendersEveryRowAndEscapesNames() {
        var server = StatReport.Row(object: .server, proxyID: 3, id: 1)
        server["svname"] = "s<1>"
        server["status"] = "DOWN"
        server["check_status"] = "L4CON"
        server["act"] = "1"
        var backend = StatReport.Row(object: .backend, proxyID: 3, id: 0)
        backend["status"] = "DOWN"
        backend["lastchg"] = "75"
        let block = StatsSnapshot.ProxyBlock(name: "app", id: 3, mode: "http", description: "the <app>", frontend: nil,
                                             servers: [StatsSnapshot.ServerLine(row: server, isBackup: false, details: "address 10.0.0.1:80")],
                                             backend: backend)
        let snapshot = StatsSnapshot(version: "1.2", node: "n1", description: nil, pid: 42, uptime: "0d 0h01m00s", info: [:],
                                     proxies: [block], uri: "/stats", request: StatsRequest(outcome: .partial), refreshSeconds: 5,
                                     admin: true, showLegends: true)
        let page = StatsHTML.render(snapshot)
        #expect(page.hasPrefix("<!DOCTYPE html>"))
        #expect(page.contains("<title>Statistics Report for Hasp on n1</title>"))
        #expect(page.contains("version 1.2"))
        #expect(page.contains("value=\"s&lt;1&gt;\"") && !page.contains("s<1>"))
        #expect(page.contains("the &lt;app&gt;"))
        #expect(page.contains("<tr class=\"active_down\">") && page.contains("title=\"address 10.0.0.1:80\""))
        #expect(page.contains("1m15s DOWN"))
        #expect(page.contains("<input type=\"hidden\" name=\"b\" value=\"#3\">"))
        #expect(page.contains("class=\"banner warn\""))
        #expect(page.contains("Disable refresh"))
        #expect(page.hasSuffix("</html>\n"))
    }
}
