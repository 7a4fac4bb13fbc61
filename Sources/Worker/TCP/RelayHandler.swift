import NIOCore

/// Copies bytes between two channels on the same event loop, with back-pressure (a side reads
/// only while its partner is writable), half-close (a FIN on one side shuts the other side's
/// output) and an inactivity timeout covering both directions.
final class RelayHandler: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    private final class SharedState {
        var lastActivity = NIODeadline.now()
        var timer: Scheduled<Void>? = nil
        let timeoutMs: Int64
        init(timeoutMs: Int64) { self.timeoutMs = timeoutMs }
    }

    private var partner: RelayHandler?
    private var context: ChannelHandlerContext?
    private var pendingRead = false
    private var inputClosed = false
    private var outputClosed = false
    private let shared: SharedState
    var onBytes: ((Int) -> Void)?

    private init(shared: SharedState) {
        self.shared = shared
    }

    static func matchedPair(timeoutMs: Int64) -> (RelayHandler, RelayHandler) {
        let shared = SharedState(timeoutMs: timeoutMs)
        let a = RelayHandler(shared: shared)
        let b = RelayHandler(shared: shared)
        a.partner = b
        b.partner = a
        return (a, b)
    }

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
        if context.channel.isActive { armTimer(context) }
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        self.context = nil
        partner = nil
    }

    func channelActive(context: ChannelHandlerContext) {
        armTimer(context)
        context.fireChannelActive()
    }

    private func armTimer(_ context: ChannelHandlerContext) {
        guard shared.timeoutMs > 0, shared.timer == nil else { return }
        schedule(context.eventLoop, at: .now() + .milliseconds(shared.timeoutMs))
    }

    private func schedule(_ loop: EventLoop, at deadline: NIODeadline) {
        let bound = NIOLoopBound(self, eventLoop: loop)
        shared.timer = loop.scheduleTask(deadline: deadline) { bound.value.timerFired(loop) }
    }

    private func timerFired(_ loop: EventLoop) {
        shared.timer = nil
        let due = shared.lastActivity + .milliseconds(shared.timeoutMs)
        if due > .now() {
            schedule(loop, at: due)
            return
        }
        context?.close(promise: nil)
        partner?.context?.close(promise: nil)
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        shared.lastActivity = .now()
        let buffer = unwrapInboundIn(data)
        onBytes?(buffer.readableBytes)
        partner?.context?.write(wrapOutboundOut(buffer), promise: nil)
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        guard let partnerContext = partner?.context else { return }
        partnerContext.flush()
        if partnerContext.channel.isWritable {
            context.read()
        } else {
            pendingRead = true
        }
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        if context.channel.isWritable, let partner, partner.pendingRead, let partnerContext = partner.context {
            partner.pendingRead = false
            partnerContext.read()
        }
        context.fireChannelWritabilityChanged()
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if let event = event as? ChannelEvent, event == .inputClosed {
            inputClosed = true
            if let partner, let partnerContext = partner.context {
                partnerContext.flush()
                partner.outputClosed = true
                partnerContext.close(mode: .output, promise: nil)
                if partner.inputClosed {
                    context.close(promise: nil)
                    partnerContext.close(promise: nil)
                }
            } else {
                context.close(promise: nil)
            }
            return
        }
        context.fireUserInboundEventTriggered(event)
    }

    func channelInactive(context: ChannelHandlerContext) {
        shared.timer?.cancel()
        shared.timer = nil
        if let partnerContext = partner?.context {
            // Let what is already queued for the partner go out before closing it.
            partnerContext.flush()
            let channel = partnerContext.channel
            channel.close(mode: .output).whenComplete { _ in channel.close(promise: nil) }
        }
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        context.close(promise: nil)
    }
}
