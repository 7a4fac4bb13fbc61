import Shared
import Testing
@testable import Worker

@Suite struct HealthCheckLogicTests {
    func record(_ h: inout CheckHealth, _ outcome: CheckStatus.Outcome) -> Bool { h.record(outcome) }

    @Test func healthCounterFollowsHAProxy() {
        // A fresh server is up at `rise`: its first failure takes it down.
        var h = CheckHealth(rise: 2, fall: 3)
        #expect(h.isUp && h.progress(drain: false) == "1/3 UP")
        #expect(record(&h, .failed))
        #expect(h.health == 0 && h.progress(drain: false) == "0/2 DOWN")
        #expect(record(&h, .passed) && h.progress(drain: false) == "1/2 DOWN" && !h.isUp)
        #expect(record(&h, .passed) && h.isSteadyUp && h.progress(drain: false) == "3/3 UP")
        #expect(!record(&h, .passed))
        // From the top it takes exactly `fall` failures.
        #expect(record(&h, .failed) && h.isUp && h.progress(drain: false) == "2/3 UP")
        #expect(record(&h, .failed) && h.isUp)
        #expect(record(&h, .failed) && !h.isUp && h.isSteadyDown)
        #expect(!record(&h, .failed))
        #expect(!record(&h, .unknown))
        var drained = CheckHealth(rise: 1, fall: 1)
        #expect(drained.progress(drain: true) == "1/1 DRAIN")
        drained.resume()
        #expect(drained.health == 1)
    }

    @Test func reportTextMatchesHAProxy() {
        #expect(CheckReport(status: .l4connect, description: "Connection refused", durationMs: 0).reasonText ==
                ", reason: Layer4 connection problem, info: \"Connection refused\", check duration: 0ms")
        #expect(CheckReport(status: .l7status, code: 503, description: "Service Unavailable", durationMs: 2).reasonText ==
                ", reason: Layer7 wrong status, code: 503, info: \"Service Unavailable\", check duration: 2ms")
        #expect(CheckReport(status: .l4timeout, durationMs: 2001).reasonText == ", reason: Layer4 timeout, check duration: 2001ms")
        #expect(CheckReport(status: .l7response, description: "a\"b\n").reasonText == ", reason: Layer7 invalid response, info: \"a<22>b<0A>\"")
        #expect(CheckStatus.l7okConditional.info == "L7OKC" && CheckStatus.socketError.info == "SOCKERR")
    }

    @Test func agentReplies() {
        #expect(AgentReply(parsing: "up\n")?.health == .up)
        let r = AgentReply(parsing: "drain,75% maxconn:30 # going away\r\n")
        #expect(r?.admin == .drain && r?.weightPercent == 75 && r?.maxconn == 30 && r?.description == "going away")
        #expect(AgentReply(parsing: "DOWN")?.health == .down)
        #expect(AgentReply(parsing: "stopped#bye")?.health == .stopped)
        #expect(AgentReply(parsing: "maint\n")?.admin == .maint)
        #expect(AgentReply(parsing: "what is this") == nil)
        #expect(AgentReply(parsing: "") == nil)
    }

    @Test func tcpExpectations() {
        let s = CheckExpectation(match: .string("+PONG"), label: "expect string '+PONG'")
        #expect(CheckMatcher.tcp(s, nil, buffer: Array("+PO".utf8), complete: false, step: 3) == .waiting)
        #expect(CheckMatcher.tcp(s, nil, buffer: Array("+PONG\r\n".utf8), complete: false, step: 3) == .satisfied)
        #expect(CheckMatcher.tcp(s, nil, buffer: Array("-ERR".utf8), complete: true, step: 3) ==
                .failed(CheckReport(status: .l7response, description: "TCPCHK did not match content '+PONG' at step 3")))
        var negated = CheckExpectation(match: .binary([0xde, 0xad]), label: "expect ! binary 'DEAD'")
        negated.negated = true
        #expect(CheckMatcher.tcp(negated, nil, buffer: [1, 2], complete: false, step: 2) == .waiting)
        #expect(CheckMatcher.tcp(negated, nil, buffer: [1, 2], complete: true, step: 2) == .satisfied)
        if case .failed = CheckMatcher.tcp(negated, nil, buffer: [0xde, 0xad], complete: false, step: 2) {} else { Issue.record("no failure") }
        let pattern = CheckExpectation(match: .binaryPattern("^DE"), label: "expect rbinary '^DE'")
        #expect(CheckMatcher.tcp(pattern, CheckPattern("^DE"), buffer: [0xde, 0xad], complete: false, step: 1) == .satisfied)
    }

    @Test func httpResponsesAndExpectations() throws {
        #expect(HTTPCheckResponse(parsing: Array("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nab".utf8), complete: false) == nil)
        let r = try #require(HTTPCheckResponse(parsing: Array("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nalive".utf8), complete: false))
        #expect(r.code == 200 && r.reason == "OK" && r.body == Array("alive".utf8))
        let chunked = try #require(HTTPCheckResponse(parsing: Array("HTTP/1.1 503 Service Unavailable\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n".utf8), complete: false))
        #expect(chunked.code == 503 && chunked.body == Array("abc".utf8))
        #expect(HTTPCheckResponse(parsing: Array("HTTP/1.0 200 OK\r\n\r\nuntil close".utf8), complete: false) == nil)
        #expect(HTTPCheckResponse(parsing: Array("HTTP/1.0 200 OK\r\n\r\nuntil close".utf8), complete: true)?.body == Array("until close".utf8))
        #expect(HTTPCheckResponse(parsing: Array("SSH-2.0\r\n\r\n".utf8), complete: true) == nil)

        let status = CheckExpectation(match: .status([200...399]), label: "")
        #expect(CheckMatcher.http(status, nil, r) == .satisfied)
        #expect(CheckMatcher.http(status, nil, chunked) == .failed(CheckReport(status: .l7status, code: 503, description: "Service Unavailable")))
        let body = CheckExpectation(match: .string("alive"), label: "")
        #expect(CheckMatcher.http(body, nil, r) == .satisfied)
        #expect(CheckMatcher.http(body, nil, chunked) == .failed(CheckReport(status: .l7response, code: 503, description: "HTTP content check did not match")))
        let rstatus = CheckExpectation(match: .statusPattern("^5"), label: "")
        #expect(CheckMatcher.http(rstatus, CheckPattern("^5"), chunked) == .satisfied)
    }
}
