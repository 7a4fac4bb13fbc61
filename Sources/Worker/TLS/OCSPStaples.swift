import CHaspTLS
import Shared
import Synchronization

/// One certificate's stapled OCSP response, shared by every context that serves the
/// certificate (haproxy keys them by OCSP certificate ID, across binds); the C side keeps the
/// bytes behind a lock, read by handshakes on any event loop and replaced from the CLI.
final class OCSPStaple: @unchecked Sendable {
    let certificateID: [UInt8]
    let pointer: OpaquePointer
    /// The next update of the response it holds (0: none).
    private let nextUpdate = Mutex<Int64>(0)
    /// The last load that offered a response.
    private let lastLoad = Mutex<UInt64>(0)

    fileprivate init?(certificateID: [UInt8]) {
        guard let pointer = hasp_ocsp_staple_new() else { return nil }
        self.certificateID = certificateID
        self.pointer = pointer
    }

    deinit { hasp_ocsp_staple_free(pointer) }

    /// The response stapled until five minutes before `nextUpdate`.
    func set(_ response: [UInt8], nextUpdate: Int64) {
        self.nextUpdate.withLock { current in
            _ = response.withUnsafeBufferPointer { hasp_ocsp_staple_set(pointer, $0.baseAddress, $0.count, nextUpdate) }
            current = nextUpdate
        }
    }

    /// A response read from a file, at load or in a committed transaction (`load` tells
    /// which): taken when it comes from a load the staple has not seen, so that contexts built
    /// again for another certificate's commit keep a response the operator set with
    /// `set ssl ocsp-response`, while a commit of this certificate replaces it, as in haproxy.
    func offer(_ response: [UInt8], nextUpdate: Int64, load: UInt64) {
        let isNew = lastLoad.withLock { last in
            defer { last = load }
            return last != load
        }
        if isNew { set(response, nextUpdate: nextUpdate) }
    }

    /// Every change goes through the same lock, so the length read is the one copied.
    var response: [UInt8]? {
        nextUpdate.withLock { _ in
            let length = hasp_ocsp_staple_get(pointer, nil, 0)
            guard length > 0 else { return nil }
            var bytes = [UInt8](repeating: 0, count: length)
            _ = hasp_ocsp_staple_get(pointer, &bytes, bytes.count)
            return bytes
        }
    }
}

/// The process's staples by certificate ID (haproxy's OCSP tree). Contexts hold their staples;
/// an ID no context uses any more drops out.
final class OCSPStaples: Sendable {
    static let shared = OCSPStaples()

    private struct WeakStaple { weak var staple: OCSPStaple? }
    private let entries = Mutex<[[UInt8]: WeakStaple]>([:])

    /// The staple of a certificate ID, made on first use.
    func staple(for certificateID: [UInt8]) -> OCSPStaple? {
        entries.withLock { entries in
            if let staple = entries[certificateID]?.staple { return staple }
            guard let staple = OCSPStaple(certificateID: certificateID) else { return nil }
            entries[certificateID] = WeakStaple(staple: staple)
            return staple
        }
    }

    func existing(_ certificateID: [UInt8]) -> OCSPStaple? {
        entries.withLock { $0[certificateID]?.staple }
    }

    /// Every staple in use, in haproxy's order (its tree compares the IDs as bytes).
    var all: [OCSPStaple] {
        entries.withLock { entries in
            entries = entries.filter { $0.value.staple != nil }
            return entries.values.compactMap(\.staple)
        }.sorted { $0.certificateID.lexicographicallyPrecedes($1.certificateID) }
    }
}
