/// A Linux capability the global `setcap` keyword may keep in workers after they drop root
/// (HAProxy 2.9's list: the network ones transparent proxying and binding need, and
/// `cap_sys_admin` for namespaces).
public enum Capability: String, CaseIterable, Sendable, Equatable {
    // In HAProxy's order, which its messages list them in.
    case netRaw = "cap_net_raw"
    case netAdmin = "cap_net_admin"
    case netBindService = "cap_net_bind_service"
    case sysAdmin = "cap_sys_admin"

    /// The kernel's number for it (linux/capability.h).
    public var number: Int32 {
        switch self {
        case .netBindService: return 10
        case .netAdmin: return 12
        case .netRaw: return 13
        case .sysAdmin: return 21
        }
    }

    public struct ParseProblem: Error, Equatable {
        public var message: String
    }

    /// `cap_a,cap_b,...` as `setcap` takes it.
    public static func parseList(_ text: String) -> Result<[Capability], ParseProblem> {
        guard !text.isEmpty else { return .failure(ParseProblem(message: "missing capability name(s). ")) }
        var list: [Capability] = []
        for name in text.split(separator: ",", omittingEmptySubsequences: false) {
            guard let capability = Capability(rawValue: String(name)) else {
                return .failure(ParseProblem(message: "unsupported capability '\(name)'. "))
            }
            if !list.contains(capability) { list.append(capability) }
        }
        return .success(list)
    }

    /// "a, b, c and d", as the error messages list the supported names.
    public static var supportedList: String {
        let names = allCases.map(\.rawValue)
        return names.dropLast().joined(separator: ", ") + " and " + names.last!
    }
}
