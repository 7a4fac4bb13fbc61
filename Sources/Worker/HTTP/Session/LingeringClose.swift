import NIOCore

/// The end of a connection closed after a local answer while the client may still be sending
/// (an invalid or oversized request, a body not read to its end).
///
/// Closing a socket whose receive queue holds unread bytes makes the kernel answer with a
/// reset, and a reset can destroy the answer before the client has read it. So, as HAProxy
/// does, the output is shut once the answer has left (the client sees its end), and whatever
/// the client still sends is read and dropped until it closes, or until `timeout` passes.
/// Placed first in the pipeline, it keeps those bytes from the session that has ended.
final class LingeringClose: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer

    private let answerSent: EventLoopFuture<Void>
    private let timeout: TimeAmount
    private var deadline: Scheduled<Void>?

    init(after answerSent: EventLoopFuture<Void>, timeout: TimeAmount) {
        self.answerSent = answerSent
        self.timeout = timeout
    }

    func handlerAdded(context: ChannelHandlerContext) {
        let channel = context.channel
        deadline = context.eventLoop.scheduleTask(in: timeout) { channel.close(promise: nil) }
        _ = try? channel.syncOptions?.setOption(.autoRead, value: true)
        answerSent.whenComplete { result in
            guard case .success = result else {
                channel.close(promise: nil)
                return
            }
            channel.close(mode: .output).whenFailure { _ in channel.close(promise: nil) }
        }
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        // Dropped: nothing is listening any more.
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if let event = event as? ChannelEvent, event == .inputClosed {
            context.close(promise: nil)
            return
        }
        context.fireUserInboundEventTriggered(event)
    }

    func channelInactive(context: ChannelHandlerContext) {
        deadline?.cancel()
        deadline = nil
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        context.close(promise: nil)
    }
}
