import Atomics
import Shared

/// Traffic counters of a frontend, backend or server, for `show stat` and `show info`.
/// Updated from every event loop with relaxed atomics; readers accept a slightly stale view.
final class ProxyCounters: Sendable {
    let requests = ManagedAtomic<Int>(0)
    /// Responses by class: 1xx, 2xx, 3xx, 4xx, 5xx, other.
    let responses: [ManagedAtomic<Int>] = (0..<6).map { _ in ManagedAtomic<Int>(0) }
    let bytesIn = ManagedAtomic<Int>(0)
    let bytesOut = ManagedAtomic<Int>(0)
    let requestErrors = ManagedAtomic<Int>(0)
    let deniedRequests = ManagedAtomic<Int>(0)
    let connectErrors = ManagedAtomic<Int>(0)
    let responseErrors = ManagedAtomic<Int>(0)
    let retries = ManagedAtomic<Int>(0)
    let redispatches = ManagedAtomic<Int>(0)
    let clientAborts = ManagedAtomic<Int>(0)
    let serverAborts = ManagedAtomic<Int>(0)
    let maxSessions = ManagedAtomic<Int>(0)
    let maxQueue = ManagedAtomic<Int>(0)
    /// Failed health analyses of observed traffic (`hanafail`).
    let failedAnalyses = ManagedAtomic<Int>(0)
    /// Seconds since the epoch of the last session, 0 if none.
    let lastSession = ManagedAtomic<Int>(0)
    let sessionRate = RateCounter()
    let requestRate = RateCounter()

    func countResponse(status: Int) {
        let index = (100..<600).contains(status) ? status / 100 - 1 : 5
        responses[index].wrappingIncrement(ordering: .relaxed)
    }

    func noteSessions(_ current: Int) { Self.raise(maxSessions, to: current) }

    func noteQueue(_ current: Int) { Self.raise(maxQueue, to: current) }

    /// Lock-free maximum.
    static func raise(_ maximum: ManagedAtomic<Int>, to value: Int) {
        var seen = maximum.load(ordering: .relaxed)
        while value > seen {
            let (exchanged, actual) = maximum.weakCompareExchange(expected: seen, desired: value, ordering: .relaxed)
            if exchanged { return }
            seen = actual
        }
    }

    func response(_ index: Int) -> Int { responses[index].load(ordering: .relaxed) }
}


/// Events per second, as HAProxy reports rates: the count of the current second plus the share
/// of the previous second's count that still falls in the last 1000 ms. Lock-free; concurrent
/// ticks at a second boundary may lose a few counts, which a rate can afford.
final class RateCounter: Sendable {
    private let period = ManagedAtomic<Int>(0)
    private let current = ManagedAtomic<Int>(0)
    private let previous = ManagedAtomic<Int>(0)
    private let highest = ManagedAtomic<Int>(0)

    /// One clock read per event: it is on the path of every connection and request.
    func tick() {
        let ms = MonotonicClock.milliseconds()
        rotate(to: ms / 1000)
        current.wrappingIncrement(ordering: .relaxed)
        let now = rate(at: ms)
        if now > highest.load(ordering: .relaxed) { highest.store(now, ordering: .relaxed) }
    }

    private func rotate(to second: Int) {
        let seen = period.load(ordering: .relaxed)
        guard seen != second, period.compareExchange(expected: seen, desired: second, ordering: .relaxed).exchanged else { return }
        let last = current.exchange(0, ordering: .relaxed)
        previous.store(second == seen + 1 ? last : 0, ordering: .relaxed)
    }

    func perSecond() -> Int {
        let ms = MonotonicClock.milliseconds()
        rotate(to: ms / 1000)
        return rate(at: ms)
    }

    private func rate(at ms: Int) -> Int {
        current.load(ordering: .relaxed) + previous.load(ordering: .relaxed) * (1000 - ms % 1000) / 1000
    }

    func maximum() -> Int { highest.load(ordering: .relaxed) }
}
