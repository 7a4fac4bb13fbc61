/// The versions of the master-worker protocol. A master records the version each worker speaks,
/// since a binary upgrade (a reload into a new binary) leaves workers of the old binary running
/// under the new master until they drain.
public enum MasterWorkerProtocol {
    /// Hasp 0.1.0 and earlier: bare text verbs (`HANDOVER <frontend>`, `CLI`, ...), chunked
    /// text hand-off, tab-separated master state and runtime state.
    public static let legacy: UInt8 = 0
    /// Binary frames (`Frame`) carrying `MasterWorkerMessage`s and records.
    public static let current: UInt8 = 1
}

/// One unit on the wire: a fixed header, then the body.
///
///     magic 0x00 'H' 'W' | version u8 | kind u8 | flags u8 | body length u32 | body
///
/// The magic starts with a NUL byte so that a frame can never be mistaken for a legacy text
/// verb, nor a legacy text for a frame. A message larger than one `SOCK_SEQPACKET` datagram is
/// split into several frames of the same kind, all but the last flagged `more`.
public struct Frame: Equatable, Sendable {
    public static let magic: [UInt8] = [0x00, 0x48, 0x57]
    public static let headerSize = magic.count + 3 + 4
    static let moreFlag: UInt8 = 1

    public var version: UInt8
    public var kind: UInt8
    public var more: Bool
    public var body: [UInt8]

    public init(version: UInt8 = MasterWorkerProtocol.current, kind: UInt8, more: Bool = false, body: [UInt8]) {
        self.version = version
        self.kind = kind
        self.more = more
        self.body = body
    }

    public var bytes: [UInt8] {
        var w = WireWriter()
        for b in Self.magic { w.u8(b) }
        w.u8(version)
        w.u8(kind)
        w.u8(more ? Self.moreFlag : 0)
        w.data(body)
        return w.bytes
    }

    public static func isFrame(_ bytes: [UInt8]) -> Bool { bytes.starts(with: magic) }

    /// Checks the header strictly: the magic, a version this binary speaks, known flags, and a
    /// length equal to what follows.
    public static func parse(_ bytes: [UInt8]) throws(WireError) -> Frame {
        guard bytes.count >= headerSize else { throw isFrame(bytes) || bytes.isEmpty ? .truncated : .notAFrame }
        guard isFrame(bytes) else { throw .notAFrame }
        var r = WireReader(bytes, offset: magic.count)
        let version = try r.u8()
        guard version == MasterWorkerProtocol.current else { throw .unsupportedVersion(version) }
        let kind = try r.u8()
        let flags = try r.u8()
        guard flags & ~moreFlag == 0 else { throw .invalid("frame flags") }
        let length = Int(try r.u32())
        guard length == r.remaining else { throw length > r.remaining ? .truncated : .badLength }
        return Frame(version: version, kind: kind, more: flags & moreFlag != 0, body: Array(bytes[headerSize...]))
    }

    /// Splits a body into frames that each fit in `maxBytes`.
    public static func split(kind: UInt8, body: [UInt8], maxBytes: Int) -> [Frame] {
        let room = max(1, maxBytes - headerSize)
        if body.count <= room { return [Frame(kind: kind, body: body)] }
        var frames: [Frame] = []
        var offset = 0
        while offset < body.count {
            let end = min(body.count, offset + room)
            frames.append(Frame(kind: kind, more: end < body.count, body: Array(body[offset..<end])))
            offset = end
        }
        return frames
    }
}

/// Joins the frames of one message as they arrive, with the descriptors that came with them.
/// A channel reader keeps one across read events, since the fragments of a large message are
/// separate datagrams.
public struct FrameAssembler: Sendable {
    /// Past this, a message is refused: nothing the master and a worker exchange comes near it.
    public static let maxMessageBytes = 64 << 20

    private var kind: UInt8?
    private var body: [UInt8] = []
    private var descriptors: [Int32] = []

    public init() {}

    public var isIdle: Bool { kind == nil }

    /// Returns the complete body and its descriptors once the last frame is in. On an error the
    /// partial message is dropped and the descriptors received so far are returned in the
    /// error's place for the caller to close.
    public mutating func feed(_ bytes: [UInt8], descriptors fds: [Int32]) -> Result<(kind: UInt8, body: [UInt8], descriptors: [Int32])?, AssemblyError> {
        let frame: Frame
        do {
            frame = try Frame.parse(bytes)
        } catch {
            return .failure(abandon(error, adding: fds))
        }
        if let pending = kind, pending != frame.kind {
            return .failure(abandon(.invalid("interleaved messages"), adding: fds))
        }
        guard body.count + frame.body.count <= Self.maxMessageBytes else {
            return .failure(abandon(.badLength, adding: fds))
        }
        kind = frame.kind
        body += frame.body
        descriptors += fds
        guard !frame.more else { return .success(nil) }
        let done = (kind: frame.kind, body: body, descriptors: descriptors)
        reset()
        return .success(done)
    }

    public struct AssemblyError: Error, Sendable {
        public var error: WireError
        public var descriptors: [Int32]
    }

    private mutating func abandon(_ error: WireError, adding fds: [Int32]) -> AssemblyError {
        let failed = AssemblyError(error: error, descriptors: descriptors + fds)
        reset()
        return failed
    }

    private mutating func reset() {
        kind = nil
        body = []
        descriptors = []
    }
}
