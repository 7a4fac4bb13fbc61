import NIOCore
import Shared
import Testing
@testable import Worker

/// A check runs on an event loop, where nothing may wait for a resolver: the names of `addr` and
/// `agent-addr` are resolved when the server is built, and the check only reads the result.
@Suite struct CheckAddressTests {
    func server(checkAddress: String?, agentAddress: String? = nil) -> Server {
        var settings = ServerSettings(name: "s1", address: .inet(host: "127.0.0.1", port: 8080),
                                      location: SourceLocation(file: "t.cfg", line: 1))
        settings.checks.address = checkAddress
        settings.checks.agentAddress = agentAddress
        return Server(settings: settings, backendName: "be", id: 1, loopCount: 1)
    }

    @Test func namesAreResolvedWhenTheServerIsBuilt() throws {
        let s = server(checkAddress: "localhost", agentAddress: "localhost")
        let host = try #require(s.checkHost?.ipAddress)
        #expect(host == "127.0.0.1" || host == "::1")
        let check = try #require(HealthChecker.destination(s, address: nil, port: 9000, agent: false))
        #expect(check.ipAddress == host && check.port == 9000)
        // Without a check port, the server's own port.
        #expect(HealthChecker.destination(s, address: nil, port: nil, agent: false)?.port == 8080)
        #expect(HealthChecker.destination(s, address: nil, port: 7000, agent: true)?.port == 7000)
    }

    @Test func aCheckNeverResolvesANameItself() {
        let s = server(checkAddress: nil)
        // A step naming a host nobody resolved beforehand gets no address (a resolver call here
        // could stall every connection of the loop); literal addresses need no resolver.
        #expect(HealthChecker.destination(s, address: "localhost", port: 80, agent: false) == nil)
        #expect(HealthChecker.destination(s, address: "127.0.0.2", port: 80, agent: false)?.ipAddress == "127.0.0.2")
        #expect(HealthChecker.destination(s, address: nil, port: nil, agent: false)?.port == 8080)
    }
}
