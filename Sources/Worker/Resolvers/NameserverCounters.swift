import Atomics

/// What one name server of a `resolvers` section did (`show resolvers`): written by the
/// resolution thread, read by the CLI, hence atomics.
public final class NameserverCounters: Sendable {
    /// HAProxy's counters, in the order `show resolvers` prints them.
    public enum Counter: Int, CaseIterable, Sendable {
        case sent, sndError, valid, update, cname, cnameError, anyErr, nx, timeout, refused, other, invalid, tooBig, truncated, outdated

        /// The label `show resolvers` gives it, padded as HAProxy pads it.
        var label: String {
            switch self {
            case .sent: "sent:       "
            case .sndError: "snd_error:  "
            case .valid: "valid:      "
            case .update: "update:     "
            case .cname: "cname:      "
            case .cnameError: "cname_error:"
            case .anyErr: "any_err:    "
            case .nx: "nx:         "
            case .timeout: "timeout:    "
            case .refused: "refused:    "
            case .other: "other:      "
            case .invalid: "invalid:    "
            case .tooBig: "too_big:    "
            case .truncated: "truncated:  "
            case .outdated: "outdated:   "
            }
        }
    }

    public let id: String
    private let values: [ManagedAtomic<Int>]

    public init(id: String) {
        self.id = id
        values = Counter.allCases.map { _ in ManagedAtomic(0) }
    }

    func add(_ counter: Counter, _ n: Int = 1) { values[counter.rawValue].wrappingIncrement(by: n, ordering: .relaxed) }
    public subscript(_ counter: Counter) -> Int { values[counter.rawValue].load(ordering: .relaxed) }
}

/// The counters of every section's name servers, in configuration order, shared by the
/// resolution thread (which counts) and the CLI (`show resolvers`).
public final class ResolversCounters: Sendable {
    public let sections: [(name: String, nameservers: [NameserverCounters])]

    init(sections: [(name: String, nameservers: [NameserverCounters])]) { self.sections = sections }

    /// `show resolvers [<id>]`, as HAProxy prints it; nil when the section does not exist.
    public func report(only name: String? = nil) -> String? {
        if sections.isEmpty { return "No resolvers found\n" }
        if let name, !sections.contains(where: { $0.name == name }) { return nil }
        var text = ""
        for section in sections where name == nil || section.name == name {
            text += "Resolvers section \(section.name)\n"
            for ns in section.nameservers {
                text += " nameserver \(ns.id):\n"
                for counter in NameserverCounters.Counter.allCases { text += "  \(counter.label) \(ns[counter])\n" }
            }
        }
        return text
    }
}
