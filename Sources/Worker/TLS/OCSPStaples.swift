import CHaspTLS
import Foundation
import Shared
import Synchronization

/// One certificate's stapled OCSP response, shared by every context that serves the
/// certificate (haproxy keys them by OCSP certificate ID, across binds); the C side keeps the
/// bytes behind a lock, read by handshakes on any event loop and replaced from the CLI.
final class OCSPStaple: @unchecked Sendable {
    let certificateID: [UInt8]
    let pointer: OpaquePointer
    /// Serialises changes and reads of the C side's response (a read takes its length, then
    /// the bytes), and holds the last load that offered a response.
    private let lastLoad = Mutex<UInt64>(0)

    fileprivate init?(certificateID: [UInt8]) {
        guard let pointer = hasp_ocsp_staple_new() else { return nil }
        self.certificateID = certificateID
        self.pointer = pointer
    }

    deinit { hasp_ocsp_staple_free(pointer) }

    /// The response stapled until five minutes before `nextUpdate`.
    func set(_ response: [UInt8], nextUpdate: Int64) {
        lastLoad.withLock { _ in store(response, nextUpdate: nextUpdate) }
    }

    /// A response read from a file, at load or in a committed transaction (`load` tells
    /// which): taken when it comes from a load the staple has not seen, so that contexts built
    /// again for another certificate's commit keep a response the operator set with
    /// `set ssl ocsp-response`, while a commit of this certificate replaces it, as in haproxy.
    func offer(_ response: [UInt8], nextUpdate: Int64, load: UInt64) {
        lastLoad.withLock { last in
            guard last != load else { return }
            last = load
            store(response, nextUpdate: nextUpdate)
        }
    }

    private func store(_ response: [UInt8], nextUpdate: Int64) {
        _ = response.withUnsafeBufferPointer { hasp_ocsp_staple_set(pointer, $0.baseAddress, $0.count, nextUpdate) }
    }

    var response: [UInt8]? {
        lastLoad.withLock { _ in
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

/// A DER OCSP response given in base64 on the runtime API (`set ssl ocsp-response`,
/// `set ssl cert <crt>.ocsp`), line feeds and carriage returns ignored as haproxy ignores them.
enum OCSPPayload {
    static func decode(_ text: String) -> [UInt8]? {
        Data(base64Encoded: text.filter { $0 != "\r" && $0 != "\n" }).map(Array.init)
    }
}
