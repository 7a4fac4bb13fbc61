import Foundation
import Testing
@testable import Shared

/// `setcap` and `source` as the parser reads them, and the manual page that documents the
/// configuration language.
@Suite struct PrivilegeConfigTests {
    @Test func capabilityListsParseInAnyOrderWithoutDuplicates() throws {
        #expect(try Capability.parseList("cap_net_admin,cap_net_raw,cap_net_admin").get() == [.netAdmin, .netRaw])
        #expect(Capability.parseList("cap_net_admin,").map { _ in true } == .failure(.init(message: "unsupported capability ''. ")))
        #expect(Capability.parseList("").map { _ in true } == .failure(.init(message: "missing capability name(s). ")))
        #expect(Capability.supportedList == "cap_net_raw, cap_net_admin, cap_net_bind_service and cap_sys_admin")
        #expect(Capability.netAdmin.number == 12 && Capability.netRaw.number == 13)
    }

    @Test func setcapAccumulatesAcrossLines() {
        let source = ConfigParser.Source(name: "t.cfg", text: "global\n    setcap cap_net_raw\n    setcap cap_net_admin,cap_net_raw\n")
        let result = ConfigParser.parse([source])
        #expect(!result.hasErrors)
        #expect(result.configuration.global.capabilities == [.netRaw, .netAdmin])
    }

    @Test func sourceOnBackendsServersAndDefaults() throws {
        let text = """
            defaults
                source 127.0.0.5
            backend a
                source 0.0.0.0 usesrc clientip
                server s1 127.0.0.1:80 source 127.0.0.2:1234 usesrc client weight 3
                server s2 127.0.0.1:81
            backend b
                server s1 127.0.0.1:80 source [::1] usesrc ipv4@10.0.0.1:99

            """
        let result = ConfigParser.parse([ConfigParser.Source(name: "t.cfg", text: text)])
        #expect(!result.hasErrors, "\(result.diagnostics)")
        let a = try #require(result.configuration.proxies.first { $0.name == "a" })
        #expect(a.source == ConnectionSource(host: "0.0.0.0", port: 0, transparent: .clientIP))
        #expect(a.servers[0].source == ConnectionSource(host: "127.0.0.2", port: 1234, transparent: .client))
        #expect(a.servers[0].weight == 3, "the keywords after source still apply")
        #expect(a.servers[1].source == nil)
        let b = try #require(result.configuration.proxies.first { $0.name == "b" })
        #expect(b.source == ConnectionSource(host: "127.0.0.5", port: 0, transparent: nil), "inherited from defaults")
        #expect(b.servers[0].source == ConnectionSource(host: "::1", port: 0, transparent: .address(host: "10.0.0.1", port: 99)))
    }

    @Test func badSourceAddressesAreRefused() {
        for text in ["source 300.1.1.1", "source 1.2.3.4:70000", "source 1.2.3.4 usesrc hdr_ip(x-forwarded-for)", "source 1.2.3.4 interface eth0"] {
            let result = ConfigParser.parse([ConfigParser.Source(name: "t.cfg", text: "backend b\n    \(text)\n")])
            #expect(result.hasErrors, "\(text)")
        }
    }

    /// Every keyword the parser accepts is in hasp.cfg(5), written as plain text.
    @Test func theConfigurationManualNamesEveryKeyword() throws {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        let page = try String(contentsOf: root.appendingPathComponent("man/hasp.cfg.5"), encoding: .utf8)
        let keywords = ConfigParser.globalKeywords + ConfigParser.proxyKeywords + ConfigParser.serverKeywords
            + Array(ConfigParser.sectionKeywords)
        let missing = keywords.filter { !page.contains("\\fB\($0)\\fR") && !page.contains("\\fB\($0) ") }
        #expect(missing.isEmpty, "not documented in man/hasp.cfg.5: \(missing)")
    }
}
