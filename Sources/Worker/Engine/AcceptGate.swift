import Atomics
import NIOConcurrencyHelpers
import NIOCore

/// `maxconn` for a frontend and for the process: when the limit is reached, the listening
/// channels stop accepting (new connections wait in the kernel's backlog, as with HAProxy) and
/// start again as soon as a connection closes.
final class AcceptGate: Sendable {
    let limit: Int
    let current = ManagedAtomic<Int>(0)
    private let paused = ManagedAtomic<Bool>(false)
    private let channels = NIOLockedValueBox<[Channel]>([])

    init(limit: Int) {
        self.limit = limit
    }

    func attach(_ channel: Channel) {
        channels.withLockedValue { $0.append(channel) }
    }

    func opened() {
        let now = current.wrappingIncrementThenLoad(ordering: .relaxed)
        guard limit > 0, now >= limit else { return }
        if paused.compareExchange(expected: false, desired: true, ordering: .relaxed).exchanged {
            setAccepting(false)
        }
    }

    func closed() {
        let now = current.wrappingDecrementThenLoad(ordering: .relaxed)
        guard limit > 0, now < limit else { return }
        if paused.compareExchange(expected: true, desired: false, ordering: .relaxed).exchanged {
            setAccepting(true)
        }
    }

    private func setAccepting(_ on: Bool) {
        for channel in channels.withLockedValue({ $0 }) {
            channel.setOption(.autoRead, value: on).whenComplete { _ in }
        }
    }
}
