import Shared
import Testing
@testable import Worker

@Suite struct LoadBalancerTests {
    func servers(_ weights: [Int]) -> [BalancerCandidate] {
        weights.enumerated().map { BalancerCandidate(index: $0.offset, weight: $0.element) }
    }

    func distribution(_ lb: inout LoadBalancer, _ candidates: [BalancerCandidate], picks: Int,
                      key: (Int) -> BalanceKey = { _ in BalanceKey() }) -> [Int] {
        var counts = [Int](repeating: 0, count: candidates.count)
        for i in 0..<picks {
            if case .server(let index) = lb.pick(candidates, key: key(i)) { counts[index] += 1 }
        }
        return counts
    }

    @Test func roundRobinFollowsWeightsExactlyAndSmoothly() {
        var lb = LoadBalancer(algorithm: .roundRobin)
        let c = servers([1, 2, 3])
        #expect(distribution(&lb, c, picks: 600) == [100, 200, 300])
        // Smooth: the heaviest server never gets more than its share in a row.
        var sequence: [Int] = []
        for _ in 0..<6 { if case .server(let i) = lb.pick(c) { sequence.append(i) } }
        #expect(sequence.filter { $0 == 2 }.count == 3)
        #expect(sequence != [2, 2, 2, 1, 1, 0])
    }

    @Test func staticRoundRobinAlsoFollowsWeights() {
        var lb = LoadBalancer(algorithm: .staticRoundRobin)
        #expect(distribution(&lb, servers([5, 5]), picks: 100) == [50, 50])
    }

    @Test func leastConnectionsPicksTheLeastLoadedPerWeight() {
        var lb = LoadBalancer(algorithm: .leastConnections)
        var c = servers([1, 1, 2])
        c[0].served = 5
        c[1].served = 1
        c[2].served = 3
        // Per unit of weight: 6, 2, 2 -> tie between 1 and 2, both chosen over time.
        var seen = Set<Int>()
        for _ in 0..<10 { if case .server(let i) = lb.pick(c) { seen.insert(i) } }
        #expect(seen == [1, 2])
        c[1].served = 0
        #expect(lb.pick(c) == .server(1))
    }

    @Test func firstFillsServersInOrder() {
        var lb = LoadBalancer(algorithm: .first)
        var c = servers([1, 1, 1]).map { var s = $0; s.maxconn = 2; return s }
        #expect(lb.pick(c) == .server(0))
        c[0].served = 2
        #expect(lb.pick(c) == .server(1))
        c[1].served = 2
        c[2].served = 2
        #expect(lb.pick(c) == .queue)
    }

    @Test func randomIsRoughlyProportional() {
        var lb = LoadBalancer(algorithm: .random(draws: 1), seed: 42)
        let counts = distribution(&lb, servers([1, 3]), picks: 4000)
        #expect(abs(counts[0] - 1000) < 150)
        #expect(abs(counts[1] - 3000) < 150)
    }

    @Test func sourceHashIsStickyAndSpreads() {
        var lb = LoadBalancer(algorithm: .source)
        let c = servers([1, 1, 1, 1])
        let key: (Int) -> BalanceKey = { i in BalanceKey(sourceAddress: [127, 0, UInt8(i % 256), UInt8(i / 256)]) }
        let first = (0..<50).map { lb.pick(c, key: key($0)) }
        let again = (0..<50).map { lb.pick(c, key: key($0)) }
        #expect(first == again)
        let counts = distribution(&lb, c, picks: 4000, key: key)
        #expect(counts.allSatisfy { $0 > 600 })
    }

    @Test func consistentHashMovesFewKeysWhenAServerLeaves() {
        var lb = LoadBalancer(algorithm: .uri(depth: nil, length: nil, wholeURI: false), hashType: .consistent)
        let four = servers([1, 1, 1, 1])
        var three = four
        three[3].isUsable = false
        let keys = (0..<2000).map { BalanceKey(uri: Substring("/object/\($0)")) }
        var moved = 0
        for key in keys {
            let before = lb.pick(four, key: key)
            let after = lb.pick(three, key: key)
            if before != .server(3) && before != after { moved += 1 }
        }
        // Only the keys of the removed server move (allowing a little slack for ties).
        #expect(moved < 100)
    }

    @Test func hashBalanceFactorBoundsAServersLoad() {
        let key = BalanceKey(uri: "/hot")
        var plain = LoadBalancer(algorithm: .uri(depth: nil, length: nil, wholeURI: false), hashType: .consistent)
        var c = servers([1, 1])
        guard case .server(let home) = plain.pick(c, key: key) else { Issue.record("no server"); return }
        let other = 1 - home
        // Three requests in progress on the key's server: 4 x 125% = 5 slots, 2 or 3 each.
        c[home].served = 3
        #expect(plain.pick(c, key: key) == .server(home))
        var bounded = LoadBalancer(algorithm: .uri(depth: nil, length: nil, wholeURI: false), hashType: .consistent, hashBalanceFactor: 125)
        #expect(bounded.pick(c, key: key) == .server(other))
        // Below its share, the key's server keeps its keys.
        c[home].served = 0
        c[other].served = 2
        #expect(bounded.pick(c, key: key) == .server(home))
    }

    @Test func uriHashIgnoresQueryUnlessWhole() {
        #expect(LoadBalancer.uriPart("/a/b?x=1", depth: nil, length: nil, whole: false) == "/a/b")
        #expect(LoadBalancer.uriPart("/a/b?x=1", depth: nil, length: nil, whole: true) == "/a/b?x=1")
        #expect(LoadBalancer.uriPart("/a/b/c", depth: 2, length: nil, whole: false) == "/a/b")
        #expect(LoadBalancer.uriPart("/abcdef", depth: nil, length: 3, whole: false) == "/ab")
    }

    @Test func headerHashFallsBackToRoundRobin() {
        var lb = LoadBalancer(algorithm: .header(name: "x-user", useDomainOnly: false))
        #expect(distribution(&lb, servers([1, 1]), picks: 10) == [5, 5])
        let sticky = lb.pick(servers([1, 1]), key: BalanceKey(headerValue: "alice"))
        for _ in 0..<5 { #expect(lb.pick(servers([1, 1]), key: BalanceKey(headerValue: "alice")) == sticky) }
    }

    @Test func backupsOnlyWhenNoActiveServerIsUsable() {
        var lb = LoadBalancer(algorithm: .roundRobin)
        var c = servers([1, 1, 1])
        c[1].isBackup = true
        c[2].isBackup = true
        #expect(distribution(&lb, c, picks: 10) == [10, 0, 0])
        c[0].isUsable = false
        // Only the first backup, as without `option allbackups`.
        #expect(distribution(&lb, c, picks: 10) == [0, 10, 0])
        c[1].isUsable = false
        c[2].isUsable = false
        #expect(lb.pick(c) == .unavailable)
    }

    @Test func fullServersQueue() {
        var lb = LoadBalancer(algorithm: .roundRobin)
        var c = servers([1])
        c[0].maxconn = 1
        c[0].served = 1
        #expect(lb.pick(c) == .queue)
        c[0].weight = 0
        #expect(lb.pick(c) == .unavailable)
    }
}

@Suite struct BuiltInResponseTests {
    @Test func bytesMatchHAProxy() {
        #expect(BuiltInResponse.serviceUnavailable.rawBytes == "HTTP/1.1 503 Service Unavailable\r\ncontent-length: 107\r\ncache-control: no-cache\r\ncontent-type: text/html\r\n\r\n<html><body><h1>503 Service Unavailable</h1>\nNo server is available to handle this request.\n</body></html>\n")
        #expect(BuiltInResponse.badRequest.rawBytes == "HTTP/1.1 400 Bad request\r\nContent-length: 90\r\nCache-Control: no-cache\r\nConnection: close\r\nContent-Type: text/html\r\n\r\n<html><body><h1>400 Bad request</h1>\nYour browser sent an invalid request.\n</body></html>\n")
        #expect(BuiltInResponse.gatewayTimeout.body.utf8.count == 92)
        #expect(BuiltInResponse.badGateway.body.utf8.count == 107)
        #expect(BuiltInResponse.requestTimeout.body.utf8.count == 110)
        #expect(BuiltInResponse.forbidden.body == "<html><body><h1>403 Forbidden</h1>\nRequest forbidden by administrative rules.\n</body></html>\n")
    }
}
