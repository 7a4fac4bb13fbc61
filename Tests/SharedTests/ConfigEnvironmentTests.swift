import Testing
@testable import Shared

/// `setenv` and its kin change what the following lines see, and only the binary makes them
/// real: a parse inside a running process (tests, `add server`) leaves `environ` alone.
@Suite struct ConfigEnvironmentTests {
    @Test func variablesSetByTheFileReachTheLinesAfterIt() {
        let text = """
        global
            setenv NAME front
            presetenv NAME ignored
            presetenv OTHER other
            setenv KEPT kept
        .if defined(OTHER)
        backend "${NAME}-${OTHER}"
        .endif
        global
            unsetenv OTHER
        .if !defined(OTHER)
        backend "gone-${OTHER}"
        .endif
        global
            resetenv KEPT
        backend "${KEPT}-${NAME}-${HOME}"
        """
        let r = parse(text, env: ["HOME": "/root"])
        #expect(alerts(r).isEmpty)
        #expect(r.configuration.proxies.map(\.name) == ["front-other", "gone-", "kept--"])
        #expect(r.environment.changes == [
            .set("HAPROXY_LOCALPEER", r.configuration.localPeer), .set("NAME", "front"), .set("OTHER", "other"),
            .set("KEPT", "kept"), .unset("OTHER"), .keepOnly(["KEPT"]),
        ])
    }

    @Test func presetenvKeepsWhatTheEnvironmentAlreadySays() {
        let r = parse("global\n presetenv NAME file\nbackend \"${NAME}\"\n", env: ["NAME": "outside"])
        #expect(r.configuration.proxies.map(\.name) == ["outside"])
    }

    @Test func parsingLeavesTheProcessEnvironmentAlone() {
        let name = "HASP_TEST_\(UInt32.random(in: 0...UInt32.max))"
        let r = ConfigParser.parse([ConfigParser.Source(name: "t.cfg", text: "global\n setenv \(name) yes\n localpeer p9\n")])
        #expect(ProcessEnvironment.get(name) == nil)
        #expect(r.environment.get(name) == "yes" && r.environment.get("HAPROXY_LOCALPEER") == "p9")
    }

    @Test func aResetHidesBaseVariablesUntilTheFileSetsThemAgain() {
        let environment = ConfigEnvironment(base: { ["A": "a", "B": "b"][$0] })
        environment.keepOnly(["A", "C"])
        #expect(environment.get("A") == "a" && environment.get("B") == nil)
        environment.set("B", "again")
        environment.set("C", "c")
        environment.keepOnly(["B", "C"])
        // A was hidden by the second reset; B and C were set by the file after the first.
        #expect(environment.get("A") == nil && environment.get("B") == "again" && environment.get("C") == "c")
    }
}
