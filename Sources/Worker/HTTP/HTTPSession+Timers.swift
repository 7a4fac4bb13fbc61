import NIOCore
import NIOPosix
import Shared

#if canImport(Glibc)
import Glibc
#endif

/// The session's single deadline and what happens when it passes.
extension HTTPSession {
    // MARK: - Timers

    func armRequestTimer(first: Bool) {
        let t = timeouts
        let ms = first ? (t.httpRequest ?? t.client ?? 0) : (t.httpKeepAlive ?? t.httpRequest ?? t.client ?? 0)
        if ms > 0 { armTimer(first ? .request : .keepAlive, after: ms) }
    }

    /// Sets the session's single deadline. The scheduled task is only replaced when the new
    /// deadline is earlier than the one already scheduled: moving a deadline later (the common
    /// case, once per request) costs nothing, and the task re-arms itself when it fires early.
    func armTimer(_ reason: TimerReason, after ms: Int64) {
        timerReason = reason
        let deadline = NIODeadline.now() + .milliseconds(ms)
        timerDeadline = deadline
        if let scheduledFor = timerScheduledFor, timer != nil, scheduledFor <= deadline { return }
        timer?.cancel()
        scheduleTimer(at: deadline)
    }

    func scheduleTimer(at deadline: NIODeadline) {
        let bound = NIOLoopBound(self, eventLoop: context.eventLoop)
        timerScheduledFor = deadline
        timer = context.eventLoop.scheduleTask(deadline: deadline) { bound.value.timerTaskRan() }
    }

    func cancelTimer() {
        // The task stays scheduled; with no reason it does nothing and is not re-armed.
        timerReason = .none
    }

    func stopTimerTask() {
        timer?.cancel()
        timer = nil
        timerScheduledFor = nil
        timerReason = .none
    }

    func timerTaskRan() {
        timer = nil
        timerScheduledFor = nil
        guard phase != .closed, timerReason != .none, let deadline = timerDeadline else { return }
        if deadline > .now() {
            scheduleTimer(at: deadline)
            return
        }
        timerFired()
    }

    func timerFired() {
        switch timerReason {
        case .none:
            return
        case .request:
            // The head never came whole: whatever is left of it may still be arriving.
            requestEnded = false
            sendBuiltIn(.requestTimeout)
        case .keepAlive:
            if (clientBuffer?.readableBytes ?? 0) > 0 {
                requestEnded = false
                sendBuiltIn(.requestTimeout)
            } else {
                closeClient()
            }
        case .queue:
            if let ticket = queueTicket, let backend = frontend.backend, backend.cancel(ticket: ticket) {
                queueTicket = nil
                sendBuiltIn(.serviceUnavailable)
            }
        case .server:
            // Inactivity timer: re-arm if the server spoke since it was set.
            let timeout = backendTimeouts.server ?? 0
            let due = lastServerActivity + .milliseconds(timeout)
            if due > .now() {
                timerDeadline = due
                scheduleTimer(at: due)
                return
            }
            detachServer(close: true)
            releaseSlot()
            if !responseStarted {
                sendBuiltIn(.gatewayTimeout)
            } else {
                terminationCause = "s"
                flushClientIfNeeded()
                closeClientAfterWrites()
            }
        case .tunnel:
            let timeout = backendTimeouts.tunnel ?? max(timeouts.client ?? 0, backendTimeouts.server ?? 0)
            let due = lastTunnelActivity + .milliseconds(timeout)
            if due > .now() {
                timerDeadline = due
                scheduleTimer(at: due)
                return
            }
            connection?.close()
            closeClient()
        }
    }
}
