import Atomics
import NIOConcurrencyHelpers
import NIOCore

/// `maxconn` for a frontend and for the process: when the limit is reached, the listening
/// channels stop accepting (new connections wait in the kernel's backlog, as with HAProxy) and
/// start again as soon as a connection closes. `disable frontend` pauses it the same way.
final class AcceptGate: Sendable {
    /// 0: no limit. Changed at run time by `set maxconn`.
    let limitValue: ManagedAtomic<Int>
    let current = ManagedAtomic<Int>(0)
    let maxReached = ManagedAtomic<Int>(0)
    let total = ManagedAtomic<Int>(0)
    let rate = RateCounter()
    private let full = ManagedAtomic<Bool>(false)
    private let disabled = ManagedAtomic<Bool>(false)
    private let channels = NIOLockedValueBox<[Channel]>([])

    init(limit: Int) {
        limitValue = ManagedAtomic(limit)
    }

    var limit: Int { limitValue.load(ordering: .relaxed) }
    var isDisabled: Bool { disabled.load(ordering: .relaxed) }
    var isFull: Bool { full.load(ordering: .relaxed) }

    /// Called by the listening channel's initializer, on its loop, before it accepts: from
    /// then on every change of state reaches it.
    func attach(_ channel: Channel) {
        channels.withLockedValue { $0.append(channel) }
        if isDisabled || isFull { _ = try? channel.syncOptions?.setOption(.autoRead, value: false) }
    }

    func noteSession() {
        total.wrappingIncrement(ordering: .relaxed)
        rate.tick()
    }

    func opened() {
        let now = current.wrappingIncrementThenLoad(ordering: .relaxed)
        let limit = self.limit
        guard limit > 0, now >= limit else { return }
        if full.compareExchange(expected: false, desired: true, ordering: .relaxed).exchanged {
            maxReached.wrappingIncrement(ordering: .relaxed)
            update()
        }
    }

    func closed() {
        let now = current.wrappingDecrementThenLoad(ordering: .relaxed)
        let limit = self.limit
        guard limit <= 0 || now < limit else { return }
        if full.compareExchange(expected: true, desired: false, ordering: .relaxed).exchanged {
            update()
        }
    }

    /// `set maxconn` (from a CLI thread): applies at once in both directions.
    func setLimit(_ value: Int) {
        limitValue.store(value, ordering: .relaxed)
        let now = current.load(ordering: .relaxed)
        full.store(value > 0 && now >= value, ordering: .relaxed)
        waitApplied(update())
    }

    /// `shutdown frontend`: the listeners close for good.
    func closeChannels() {
        for channel in channels.withLockedValue({ $0 }) { channel.close(promise: nil) }
    }

    /// `disable frontend` / `enable frontend` (from a CLI thread): returns once every listener
    /// has stopped (or resumed) accepting, so the reply never precedes the effect.
    func setDisabled(_ value: Bool) {
        disabled.store(value, ordering: .relaxed)
        waitApplied(update())
    }

    private func waitApplied(_ changes: [EventLoopFuture<Void>]) {
        for change in changes { _ = try? change.wait() }
    }

    @discardableResult
    private func update() -> [EventLoopFuture<Void>] {
        let on = !isDisabled && !isFull
        return channels.withLockedValue({ $0 }).map { $0.setOption(.autoRead, value: on) }
    }
}
