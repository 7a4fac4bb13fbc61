import CCares
import Shared

#if canImport(Glibc)
import Glibc
#endif

/// One name server of a `resolvers` section: a c-ares channel of its own, so that each question
/// goes to every name server and the counters are the server's, as in HAProxy. UDP with the
/// section's EDNS0 payload size (c-ares asks again over TCP when an answer is truncated), or
/// TCP from the start for `tcp@`. One try per question: the service retries a question that
/// timed out itself (`resolve_retries`, each waiting `timeout retry`), where c-ares would
/// double the wait at each try.
final class NameserverChannel {
    let channel: ares_channel
    let counters: NameserverCounters

    init?(section: ResolversSettings, nameserver: ResolversSettings.Nameserver, counters: NameserverCounters) {
        var options = ares_options()
        options.timeout = Int32(clamping: max(1, section.timeoutRetryMs))
        options.tries = 1
        var mask = ARES_OPT_TIMEOUTMS | ARES_OPT_TRIES | ARES_OPT_FLAGS
        // Replies are handed over whatever their code: the service counts refusals and failures.
        options.flags = ARES_FLAG_NOCHECKRESP
        if nameserver.overTCP { options.flags |= ARES_FLAG_USEVC }
        if section.acceptedPayloadSize > 512 {
            options.flags |= ARES_FLAG_EDNS
            options.ednspsz = Int32(section.acceptedPayloadSize)
            mask |= ARES_OPT_EDNSPSZ
        }
        var created: ares_channel? = nil
        guard ares_init_options(&created, &options, mask) == ARES_SUCCESS, let created else { return nil }
        let host = nameserver.host.contains(":") ? "[\(nameserver.host)]" : nameserver.host
        guard ares_set_servers_ports_csv(created, "\(host):\(nameserver.port)") == ARES_SUCCESS else {
            ares_destroy(created)
            return nil
        }
        channel = created
        self.counters = counters
    }

    deinit { ares_destroy(channel) }

    /// Sends a question; c-ares calls `callback` with `argument` once (also on failure).
    func ask(_ name: String, _ type: DNSQueryType, callback: ares_callback, argument: UnsafeMutableRawPointer) {
        counters.add(.sent)
        ares_query(channel, name, Int32(ns_c_in.rawValue), type.code, callback, argument)
    }

    /// The sockets c-ares waits on, for `poll`.
    func pollDescriptors() -> [pollfd] {
        var sockets = [ares_socket_t](repeating: ARES_SOCKET_BAD, count: Int(ARES_GETSOCK_MAXNUM))
        let bits = ares_getsock(channel, &sockets, Int32(ARES_GETSOCK_MAXNUM))
        var fds: [pollfd] = []
        for i in 0..<Int(ARES_GETSOCK_MAXNUM) {
            let readable = bits & (1 << i) != 0, writable = bits & (1 << (i + Int(ARES_GETSOCK_MAXNUM))) != 0
            guard readable || writable else { continue }
            fds.append(pollfd(fd: sockets[i], events: Int16((readable ? POLLIN : 0) | (writable ? POLLOUT : 0)), revents: 0))
        }
        return fds
    }

    /// Milliseconds until c-ares needs to run its timers (at most `limit`).
    func nextTimeout(limit: Int) -> Int {
        var max = timeval(tv_sec: limit / 1000, tv_usec: Int(limit % 1000) * 1000), tv = timeval()
        guard let next = ares_timeout(channel, &max, &tv) else { return limit }
        return Swift.min(limit, Int(next.pointee.tv_sec) * 1000 + Int(next.pointee.tv_usec) / 1000)
    }

    func process(_ fd: pollfd) {
        let read = fd.revents & Int16(POLLIN | POLLERR | POLLHUP) != 0 ? fd.fd : ARES_SOCKET_BAD
        let write = fd.revents & Int16(POLLOUT) != 0 ? fd.fd : ARES_SOCKET_BAD
        ares_process_fd(channel, read, write)
    }

    /// Runs c-ares's timers (questions that timed out).
    func processTimers() { ares_process_fd(channel, ARES_SOCKET_BAD, ARES_SOCKET_BAD) }
}
