import CHaspTLS
import NIOConcurrencyHelpers
import Shared

/// The certificates of the running configuration as the runtime API changes them: HAProxy's
/// one transaction at a time (`set ssl cert` ... `commit ssl cert`), stores made empty by
/// `new ssl cert`, and crt-list entries added or deleted. A commit rebuilds the TLS contexts
/// of every bind that uses the certificate, off the event loops (on the CLI thread), and swaps
/// them in only if all of them built: new handshakes use them, open connections keep theirs.
///
/// Nothing here is written to disk: a reload reads the files again, as HAProxy does, so a
/// change survives a reload only if the operator also updated the file.
final class TLSCertificateStore: Sendable {
    struct Transaction {
        var path: String
        var file: TLSCertificateFile
        /// `set ssl cert <path>.ocsp` and `<path>.issuer`: the parts given so far, and why
        /// they do not make a usable `file.ocsp` yet (the commit fails with it).
        var ocspBytes: [UInt8]? = nil
        var issuer: [UInt8]? = nil
        var ocspFailure: String? = nil
    }

    /// The companion files a transaction can replace besides the PEM.
    enum Companion {
        case ocsp, issuer
    }

    struct State {
        var transaction: Transaction?
        /// `new ssl cert` stores: nil until a certificate is committed into them.
        var created: [String: TLSCertificateFile?] = [:]
    }

    private let state = NIOLockedValueBox(State())
    private let slots: @Sendable () -> [TLSBindSlot]

    init(slots: @escaping @Sendable () -> [TLSBindSlot]) {
        self.slots = slots
    }

    enum Failure: Error, Equatable {
        case message(String)
    }

    // MARK: - What exists

    /// Every certificate a bind uses, by path, in first-seen order, and whether it is used.
    func certificates() -> [(path: String, file: TLSCertificateFile?, used: Bool)] {
        var seen: [String] = []
        var files: [String: TLSCertificateFile] = [:]
        for slot in slots() {
            for file in slot.settings.tls.certificates where files[file.path] == nil {
                seen.append(file.path)
                files[file.path] = file
            }
        }
        var result = seen.map { (path: $0, file: files[$0], used: true) }
        let created = state.withLockedValue { $0.created }
        for (path, file) in created.sorted(by: { $0.key < $1.key }) where files[path] == nil {
            result.append((path, file, false))
        }
        return result
    }

    var transaction: Transaction? { state.withLockedValue { $0.transaction } }

    /// The crt-lists (and certificate directories) binds use, in first-seen order.
    func lists() -> [String] {
        var seen: [String] = []
        for slot in slots() {
            for file in slot.settings.tls.certificates {
                if let list = file.list, !seen.contains(list) { seen.append(list) }
            }
        }
        return seen
    }

    /// A list's entries (from the first bind that uses it).
    func entries(of list: String) -> [TLSCertificateFile]? {
        for slot in slots() {
            let entries = slot.settings.tls.certificates.filter { $0.list == list }
            if !entries.isEmpty { return entries }
        }
        return lists().contains(list) ? [] : nil
    }

    // MARK: - Transactions

    /// `set ssl cert <path>` with the PEM payload.
    func set(_ path: String, pem: [UInt8]) -> Result<String, Failure> {
        let known = certificates().first { $0.path == path }
        guard let known else {
            return .failure(.message("Can't replace a certificate which is not referenced by the configuration!\nCan't update \(path)!\n"))
        }
        if let ongoing = transaction, ongoing.path != path {
            return .failure(.message("The ongoing transaction is about '\(ongoing.path)' but you are trying to set '\(path)'\nCan't update \(path)!\n"))
        }
        var key: [UInt8]? = nil
        switch CertificateCheck.validate(pem, key: nil) {
        case .success(true):
            break
        case .success(false):
            // A certificate alone keeps the key it had, if it matches.
            key = known.file?.key
            guard let key, case .success = CertificateCheck.validate(pem, key: key) else {
                return .failure(.message("No Private Key found in '\(path).key'.\nCan't load the payload\nCan't update \(path)!\n"))
            }
        case .failure(.keyMismatch):
            return .failure(.message("inconsistencies between private key and certificate loaded '\(path)'.\nCan't load the payload\nCan't update \(path)!\n"))
        case .failure:
            return .failure(.message("unable to load certificate from file '\(path)'.\nCan't load the payload\nCan't update \(path)!\n"))
        }
        var file = known.file ?? TLSCertificateFile(path: path, pem: [])
        file.pem = pem
        file.key = key
        // As in haproxy, a new PEM replaces the whole entry: the `.ocsp` response read at load
        // (and its `.issuer`) go with the old certificate, and stapling stops for it.
        file.ocsp = nil
        let updated = state.withLockedValue { s -> Bool in
            defer { s.transaction = Transaction(path: path, file: file) }
            return s.transaction != nil
        }
        return .success("Transaction \(updated ? "updated" : "created") for certificate \(path)!\n")
    }

    func abort(_ path: String) -> Result<String, Failure> {
        state.withLockedValue { s in
            guard let ongoing = s.transaction else { return .failure(.message("No ongoing transaction!\n")) }
            guard ongoing.path == path else {
                return .failure(.message("The ongoing transaction is about '\(ongoing.path)' but you are trying to abort a transaction for '\(path)'\n"))
            }
            s.transaction = nil
            return .success("Transaction aborted for certificate '\(path)'!\n")
        }
    }

    /// `set ssl cert <path>.ocsp` (base64 DER) or `<path>.issuer` (PEM): one more part of the
    /// certificate's transaction. The response is checked against the certificate once both it
    /// and an issuer (the chain, or an `.issuer` part or file) are known; the commit fails if
    /// they never are, as haproxy's does.
    func setCompanion(_ name: String, of path: String, _ kind: Companion, payload: String) -> Result<String, Failure> {
        guard let known = certificates().first(where: { $0.path == path }) else {
            return .failure(.message("Can't replace a certificate which is not referenced by the configuration!\nCan't update \(name)!\n"))
        }
        if let ongoing = transaction, ongoing.path != path {
            return .failure(.message("The ongoing transaction is about '\(ongoing.path)' but you are trying to set '\(path)'\nCan't update \(name)!\n"))
        }
        var pending = transaction ?? Transaction(path: path, file: known.file ?? TLSCertificateFile(path: path, pem: []))
        switch kind {
        case .ocsp:
            guard let der = OCSPPayload.decode(payload) else {
                // haproxy's two messages, without a line feed between them.
                return .failure(.message("Error reading OCSP response in base64 formatCan't load the payload\nCan't update \(name)!\n"))
            }
            pending.ocspBytes = der
        case .issuer:
            let pem = Array((payload + "\n").utf8)
            guard CertificateCheck.countCertificates(pem, crl: false) > 0 else {
                return .failure(.message("'\(name)' cannot be read or parsed'.\nCan't load the payload\nCan't update \(name)!\n"))
            }
            pending.issuer = pem
        }
        pending.ocspFailure = nil
        if let bytes = pending.ocspBytes ?? pending.file.ocsp?.fileBytes {
            switch TLSOCSPFile.load(for: pending.file, bytes: bytes, issuer: pending.issuer ?? pending.file.ocsp?.issuer) {
            case .success(let (ocsp, _)): pending.file.ocsp = ocsp
            case .failure(let failure):
                pending.file.ocsp = nil
                pending.ocspFailure = String(failure.message.dropFirst())
            }
        }
        let updated = state.withLockedValue { s -> Bool in
            defer { s.transaction = pending }
            return s.transaction != nil
        }
        return .success("Transaction \(updated ? "updated" : "created") for certificate \(path)!\n")
    }

    /// `commit ssl cert <path>`: every bind using the certificate gets new contexts, or none.
    func commit(_ path: String, global: GlobalTLSSettings) -> Result<String, Failure> {
        guard let ongoing = transaction else { return .failure(.message("No ongoing transaction! !\nCan't commit \(path)!\n")) }
        guard ongoing.path == path else {
            return .failure(.message("The ongoing transaction is about '\(ongoing.path)' but you are trying to set '\(path)'\nCan't commit \(path)!\n"))
        }
        if let failure = ongoing.ocspFailure {
            return .failure(.message("Committing \(path)\n\(failure)\nCan't commit \(path)!\n"))
        }
        let result = rebuild(global: global) { settings in
            var changed = false
            for index in settings.tls.certificates.indices where settings.tls.certificates[index].path == path {
                settings.tls.certificates[index].pem = ongoing.file.pem
                settings.tls.certificates[index].key = ongoing.file.key
                settings.tls.certificates[index].ocsp = ongoing.file.ocsp
                changed = true
            }
            return changed
        }
        switch result {
        case .failure(let failure):
            return .failure(.message("Committing \(path)\n\(failure)\nCan't commit \(path)!\n"))
        case .success(let count):
            state.withLockedValue { s in
                s.transaction = nil
                if s.created[path] != nil { s.created[path] = ongoing.file }
            }
            return .success("Committing \(path)\(String(repeating: ".", count: count))\nSuccess!\n")
        }
    }

    /// `new ssl cert <path>`: an empty store, to fill with `set` and `commit`.
    func create(_ path: String) -> Result<String, Failure> {
        if certificates().contains(where: { $0.path == path }) {
            return .failure(.message("Certificate '\(path)' already exists!\n"))
        }
        state.withLockedValue { $0.created[path] = .some(nil) }
        return .success("New empty certificate store '\(path)'!\n")
    }

    /// `del ssl cert <path>`: only a certificate no bind uses.
    func delete(_ path: String) -> Result<String, Failure> {
        guard let known = certificates().first(where: { $0.path == path }) else {
            return .failure(.message("Can't remove the certificate: certificate '\(path)' doesn't exist!\n"))
        }
        guard !known.used else {
            return .failure(.message("Can't remove the certificate: certificate '\(path)' in use, can't be deleted!\n"))
        }
        if transaction?.path == path {
            return .failure(.message("Can't remove the certificate: certificate '\(path)' is being updated!\n"))
        }
        state.withLockedValue { _ = $0.created.removeValue(forKey: path) }
        return .success("Certificate '\(path)' deleted!\n")
    }

    // MARK: - crt-lists

    /// `add ssl crt-list <list> <line>`: a committed certificate joins every bind using the list.
    func add(to list: String, line: ConfigParser.CrtListLine, global: GlobalTLSSettings) -> Result<String, Failure> {
        guard lists().contains(list) else { return .failure(.message("crtlist '\(list)' does not exist!\n")) }
        guard let certificate = certificates().first(where: { $0.path == line.file })?.file, !certificate.pem.isEmpty else {
            return .failure(.message("certificate '\(line.file)' does not exist!\n"))
        }
        var entry = certificate
        entry.list = list
        entry.options = line.options
        entry.optionWords = line.optionWords
        entry.filters = line.filters
        let result = rebuild(global: global) { settings in
            guard let last = settings.tls.certificates.lastIndex(where: { $0.list == list }) else { return false }
            entry.line = settings.tls.certificates[last].line + 1
            settings.tls.certificates.insert(entry, at: last + 1)
            return true
        }
        switch result {
        case .failure(let failure): return .failure(.message("\(failure)\n"))
        case .success(let count):
            return .success("Inserting certificate '\(line.file)' in crt-list '\(list)'\(String(repeating: ".", count: count))\nSuccess!\n")
        }
    }

    /// `del ssl crt-list <list> <cert[:line]>`.
    func remove(from list: String, certificate: String, global: GlobalTLSSettings) -> Result<String, Failure> {
        guard lists().contains(list) else { return .failure(.message("crtlist '\(list)' does not exist!\n")) }
        var path = certificate
        var line: Int? = nil
        if let colon = certificate.lastIndex(of: ":"), let n = Int(certificate[certificate.index(after: colon)...]) {
            path = String(certificate[..<colon])
            line = n
        }
        var found = false
        var emptied = false
        let result = rebuild(global: global) { settings in
            let before = settings.tls.certificates.count
            settings.tls.certificates.removeAll { $0.list == list && $0.path == path && (line == nil || $0.line == line) }
            // A bind keeps at least one certificate.
            if settings.tls.certificates.isEmpty {
                emptied = true
                return false
            }
            if settings.tls.certificates.count != before { found = true }
            return settings.tls.certificates.count != before
        }
        if case .failure(let failure) = result { return .failure(.message("\(failure)\n")) }
        if emptied, !found {
            return .failure(.message("Can't delete '\(certificate)': it is the last certificate of a bind line using crtlist '\(list)'!\n"))
        }
        guard found else { return .failure(.message("entry '\(certificate)' not found in crtlist '\(list)'!\n")) }
        return .success("Entry '\(certificate)' deleted in crtlist '\(list)'!\n")
    }

    /// Rebuilds the contexts of every bind `change` edits; all or nothing. Returns how many
    /// binds changed.
    private func rebuild(global: GlobalTLSSettings, _ change: (inout BindSettings) -> Bool) -> Result<Int, TLSBuildError> {
        var built: [(TLSBindSlot, TLSServerContext, BindSettings)] = []
        for slot in slots() {
            var settings = slot.settings
            guard change(&settings) else { continue }
            do {
                built.append((slot, try TLSServerContext.build(settings, proxy: slot.frontend, global: global), settings))
            } catch {
                return .failure(error)
            }
        }
        for (slot, context, settings) in built { slot.replace(context, settings: settings) }
        return .success(built.count)
    }
}
