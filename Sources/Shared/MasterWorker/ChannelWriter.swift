#if canImport(Glibc)
import Glibc
#endif

/// Sends on a channel that several threads write to (a worker: its event loops hand connections
/// over while its channel reader answers the master), one whole message at a time, so that the
/// datagrams of a large message are never interleaved with another message's.
public final class ChannelWriter: @unchecked Sendable {
    public let channel: IPCChannel
    private var mutex = pthread_mutex_t()

    public init(_ channel: IPCChannel) {
        self.channel = channel
        pthread_mutex_init(&mutex, nil)
    }

    deinit { pthread_mutex_destroy(&mutex) }

    /// `waiting: false` never blocks, not even on the lock: a send in progress elsewhere fails
    /// this one at once, as a full socket would (callers on an event loop).
    public func send(_ message: MasterWorkerMessage, descriptors: [Int32] = [], waiting: Bool = true) throws(IPCChannel.Failure) {
        if waiting {
            pthread_mutex_lock(&mutex)
        } else if pthread_mutex_trylock(&mutex) != 0 {
            throw IPCChannel.Failure(description: "channel busy")
        }
        defer { pthread_mutex_unlock(&mutex) }
        try channel.send(message, descriptors: descriptors, waiting: waiting)
    }
}
