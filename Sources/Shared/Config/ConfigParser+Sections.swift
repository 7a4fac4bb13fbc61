/// Shared steps of sections and keywords: naming a section being opened, and HAProxy's warning
/// for a keyword a proxy has no capability for.
extension ConfigParser {
    /// The name of a section being opened; nil, with the section ignored, when it is missing or
    /// `duplicate` (the message for a name already used) is given.
    mutating func openedSectionName(_ words: [String], duplicate: String?) -> String? {
        guard words.count >= 2 else {
            parsingAlert(Self.missingSectionName[words[0]]!)
            section = .ignored(words[0])
            return nil
        }
        if let duplicate {
            alert(duplicate)
            section = .ignored(words[0])
            return nil
        }
        return words[1]
    }

    /// HAProxy's `warnifnotcap`: whether section `p` has `capability`; when it has not, warns
    /// that `keyword` is ignored (`hint` follows the message).
    mutating func hasCapability(_ capability: ProxyCapabilities, for keyword: String, in p: ProxySettings, hint: String = "") -> Bool {
        guard !p.capabilities.contains(capability) else { return true }
        let side = capability == .frontend ? "frontend" : "backend"
        parsingWarning("'\(keyword)' ignored because \(p.kind.rawValue) '\(p.name)' has no \(side) capability.\(hint)")
        return false
    }
}
