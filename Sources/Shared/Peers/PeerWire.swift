/// HAProxy's peers protocol (version 2.1), the byte level: its variable-length integers, the
/// handshake lines and the message frames. Facts from HAProxy's `doc/peers*.txt` and from
/// captures of haproxy 2.6 talking to itself.

/// The protocol's unsigned integers: below 240 one byte; above, a first byte of 240 plus the
/// low 4 bits, then 7 bits a byte with the high bit saying "more" (each byte's value is added
/// as is, the encoder having subtracted those offsets).
public enum PeerVarint {
    public static func encode(_ value: UInt64, into out: inout [UInt8]) {
        var v = value
        if v < 240 {
            out.append(UInt8(v))
            return
        }
        out.append(UInt8(truncatingIfNeeded: v) | 0xF0)
        v = (v - 240) >> 4
        while v >= 128 {
            out.append(UInt8(truncatingIfNeeded: v) | 0x80)
            v = (v - 128) >> 7
        }
        out.append(UInt8(v))
    }

    /// The integer at `at`, advancing it; nil when the bytes end first or it is longer than
    /// ten bytes (64 bits).
    public static func decode(_ bytes: [UInt8], at: inout Int, end: Int? = nil) -> UInt64? {
        let end = end ?? bytes.count
        guard at < end else { return nil }
        var value = UInt64(bytes[at])
        at += 1
        guard value >= 240 else { return value }
        var shift: UInt64 = 4
        while true {
            guard at < end, shift < 64 else { return nil }
            let byte = UInt64(bytes[at])
            at += 1
            value &+= byte << shift
            shift += 7
            if byte < 128 { return value }
        }
    }
}

/// The message classes and types on the wire.
public enum PeerMessageCode {
    public static let control: UInt8 = 0
    public static let error: UInt8 = 1
    public static let stickTable: UInt8 = 10
    public static let reserved: UInt8 = 255

    // Control.
    public static let resyncRequest: UInt8 = 0
    public static let resyncFinished: UInt8 = 1
    public static let resyncPartial: UInt8 = 2
    public static let resyncConfirm: UInt8 = 3
    public static let heartbeat: UInt8 = 4

    // Errors.
    public static let protocolError: UInt8 = 0
    public static let sizeLimit: UInt8 = 1

    // Stick tables (bit 7: a length and a payload follow).
    public static let update: UInt8 = 0x80
    public static let incrementalUpdate: UInt8 = 0x81
    public static let define: UInt8 = 0x82
    public static let `switch`: UInt8 = 0x83
    public static let ack: UInt8 = 0x84
    public static let timedUpdate: UInt8 = 0x85
    public static let timedIncrementalUpdate: UInt8 = 0x86
}

/// One message as framed: its class, type and payload (empty for two-byte messages).
public struct PeerFrame: Equatable, Sendable {
    public var messageClass: UInt8
    public var type: UInt8
    public var payload: [UInt8]

    public init(_ messageClass: UInt8, _ type: UInt8, _ payload: [UInt8] = []) {
        self.messageClass = messageClass
        self.type = type
        self.payload = payload
    }

    public static func control(_ type: UInt8) -> PeerFrame { PeerFrame(PeerMessageCode.control, type) }

    public func encode(into out: inout [UInt8]) {
        out.append(messageClass)
        out.append(type)
        if type & 0x80 != 0 {
            PeerVarint.encode(UInt64(payload.count), into: &out)
            out.append(contentsOf: payload)
        }
    }
}

/// Cuts received bytes into frames. A peer announcing a message over `maxPayload` bytes or
/// using the reserved class is refused (HAProxy answers a size-limit or protocol error and
/// closes).
public struct PeerFrameReader: Sendable {
    public enum Failure: Error, Equatable, Sendable {
        case protocolError
        case tooLarge(Int)
    }

    public let maxPayload: Int
    private var buffer: [UInt8] = []
    private var start = 0

    public init(maxPayload: Int = 16384) {
        self.maxPayload = maxPayload
    }

    public mutating func append(_ bytes: some Sequence<UInt8>) {
        if start > 0, start == buffer.count {
            buffer.removeAll(keepingCapacity: true)
            start = 0
        } else if start > 65536 {
            buffer.removeFirst(start)
            start = 0
        }
        buffer.append(contentsOf: bytes)
    }

    /// The next complete frame, nil when more bytes are needed.
    public mutating func next() throws(Failure) -> PeerFrame? {
        guard buffer.count - start >= 2 else { return nil }
        let messageClass = buffer[start], type = buffer[start + 1]
        if messageClass == PeerMessageCode.reserved { throw .protocolError }
        guard type & 0x80 != 0 else {
            start += 2
            return PeerFrame(messageClass, type)
        }
        var at = start + 2
        // The length takes at most five bytes.
        guard let length = PeerVarint.decode(buffer, at: &at, end: min(buffer.count, start + 7)) else {
            if buffer.count - start >= 7 { throw .protocolError }
            return nil
        }
        guard length <= UInt64(maxPayload) else { throw .tooLarge(Int(clamping: length)) }
        guard buffer.count - at >= Int(length) else { return nil }
        let payload = Array(buffer[at..<(at + Int(length))])
        start = at + Int(length)
        return PeerFrame(messageClass, type, payload)
    }

    /// Bytes received and not yet framed (the handshake's lines are read from them).
    public var pending: Int { buffer.count - start }

    /// Takes one `\n`-terminated line (its `\r\n` or `\n` removed); nil when none is complete.
    /// Throws when `limit` bytes go by without a line end.
    public mutating func line(limit: Int = 1024) throws(Failure) -> String? {
        guard let end = buffer[start...].firstIndex(of: 10) else {
            if buffer.count - start > limit { throw .protocolError }
            return nil
        }
        var last = end
        if last > start, buffer[last - 1] == 13 { last -= 1 }
        let text = String(decoding: buffer[start..<last], as: UTF8.self)
        start = end + 1
        return text
    }
}

/// The handshake: the connecting peer sends three lines, the other answers a status line.
public enum PeerHandshake {
    public static let protocolName = "HAProxyS"
    public static let version = "2.1"

    /// Status codes of the answer.
    public enum Status: Int, Sendable {
        case succeeded = 200
        case tryAgainLater = 300
        case protocolError = 501
        case badVersion = 502
        case localNameMismatch = 503
        case unknownPeer = 504

        /// `show peers`' name of a status.
        public var name: String {
            switch self {
            case .succeeded: return "ESTA"
            case .tryAgainLater: return "RETR"
            case .protocolError: return "PROT"
            case .badVersion: return "VERS"
            case .localNameMismatch: return "NAME"
            case .unknownPeer: return "UNKN"
            }
        }
    }

    /// The hello a peer sends to `remote`.
    public static func hello(remote: String, local: String, pid: Int32) -> [UInt8] {
        Array("\(protocolName) \(version)\n\(remote)\n\(local) \(pid) 1\n".utf8)
    }

    /// Checks a received hello's lines as they arrive (a bad line is answered at once): the
    /// peer's name once all three passed, nil while more are needed, else the status to answer.
    public static func check(_ lines: [String], localName: String, knownPeers: Set<String>) -> Result<String?, StatusError> {
        if let first = lines.first {
            let prefix = protocolName + " "
            guard first.hasPrefix(prefix) else { return .failure(StatusError(.protocolError)) }
            let version = first.dropFirst(prefix.count).split(separator: ".", omittingEmptySubsequences: false)
            guard version.count == 2, let major = UInt(version[0]), let minor = UInt(version[1]), major == 2, minor <= 1 else {
                return .failure(StatusError(.badVersion))
            }
        }
        if lines.count >= 2, lines[1] != localName { return .failure(StatusError(.localNameMismatch)) }
        guard lines.count >= 3 else { return .success(nil) }
        guard let space = lines[2].firstIndex(of: " ") else { return .failure(StatusError(.protocolError)) }
        let name = String(lines[2][..<space])
        guard knownPeers.contains(name) else { return .failure(StatusError(.unknownPeer)) }
        return .success(name)
    }

    public struct StatusError: Error, Sendable {
        public var status: Status
        public init(_ status: Status) { self.status = status }
    }

    /// The answer line.
    public static func statusLine(_ status: Status) -> [UInt8] { Array("\(status.rawValue)\n".utf8) }
}
