import NIOCore
import Shared

/// The scheduled task behind the exchange's single deadline, and what its expiry does.
extension HTTPSession {
    /// Makes sure a task runs no later than the exchange's deadline. The task is only replaced
    /// when the deadline moved earlier than the one already scheduled: moving a deadline later
    /// (the common case, once per request) costs nothing, and the task re-arms itself when it
    /// runs early.
    func syncTimer() {
        guard exchange.timer != nil, !exchange.isClosed else { return }
        let deadline = exchange.deadline
        if let scheduledFor = timerScheduledFor, timerTask != nil, scheduledFor <= deadline { return }
        timerTask?.cancel()
        let bound = NIOLoopBound(self, eventLoop: context.eventLoop)
        timerScheduledFor = deadline
        let delay = max(0, deadline - clock.now())
        timerTask = context.eventLoop.scheduleTask(in: .milliseconds(delay)) { bound.value.timerTaskRan() }
    }

    func stopTimerTask() {
        timerTask?.cancel()
        timerTask = nil
        timerScheduledFor = nil
    }

    func timerTaskRan() {
        timerTask = nil
        timerScheduledFor = nil
        guard !exchange.isClosed, exchange.timer != nil else { return }
        // A handshake that outlasts the request timeout ends as a TLS failure, not with a 408.
        if let tls = clientTLS, tls.state == .handshaking {
            tls.expire()
            return
        }
        let action = exchange.timerFired(now: clock.now(), clientBuffered: !clientIn.isEmpty)
        switch action {
        case .none:
            break
        case .respond(let answer):
            sendBuiltIn(answer)
        case .close:
            closeClient()
        case .leaveQueue:
            if dialer.leaveQueue() {
                exchange.leftQueue()
                sendBuiltIn(.serviceUnavailable, cause: ("s", "Q"))
            }
        case .serverTimeout:
            detachServer(close: true)
            dialer.release()
            if !exchange.responseStarted {
                sendBuiltIn(.gatewayTimeout)
            } else {
                flushClientIfNeeded()
                closeClientAfterWrites()
            }
        case .closeTunnel:
            connection?.close()
            closeClient()
        case .bodyWaitOver:
            resumeBufferedRequest()
        }
        syncTimer()
    }
}
