/// `proc.`, `sess.`, `txn.`, `req.`, `res.`, `check.`: where a variable lives.
public enum VariableScope: String, Sendable, CaseIterable {
    case proc, sess, txn, req, res, check
}

/// A variable's full name, validated at load.
public struct VariableName: Hashable, Sendable, CustomStringConvertible {
    public var scope: VariableScope
    public var name: String

    public init(scope: VariableScope, name: String) {
        self.scope = scope
        self.name = name
    }

    public var description: String { "\(scope.rawValue).\(name)" }

    public struct Invalid: Error, Sendable {
        public var message: String
    }

    /// Parses `txn.name`, with HAProxy's messages for a bad one.
    public static func parse(_ text: String) throws(Invalid) -> VariableName {
        let parts = text.split(separator: ".", maxSplits: 1, omittingEmptySubsequences: false)
        guard parts.count == 2, let scope = VariableScope(rawValue: String(parts[0])) else {
            throw Invalid(message: "invalid variable name '\(text)'. A variable name must be start by its scope. The scope can be 'proc', 'sess', 'txn', 'req', 'res' or 'check'")
        }
        let name = String(parts[1])
        guard !name.isEmpty else {
            throw Invalid(message: "Empty variable name: cannot parse '\(text)'")
        }
        for c in name.unicodeScalars where !(c.properties.isAlphabetic && c.isASCII || ("0"..."9").contains(c) || c == "_" || c == ".") {
            throw Invalid(message: "Invalid character '\(c)' in variable name '\(text)'")
        }
        return VariableName(scope: scope, name: name)
    }
}

/// `set-var` / `set-var-fmt` in the global section: a `proc.` variable each worker sets once,
/// in the order of the file, before it serves (a later one may read an earlier one).
public struct GlobalVariableSetting: Sendable, Equatable {
    public enum Value: Sendable {
        case expression(SampleExpression)
        case format(LogFormatString)
    }

    public let name: VariableName
    public let value: Value
    /// The expression or format as written (equality across reloads).
    public let source: String

    public init(name: VariableName, value: Value, source: String) {
        self.name = name
        self.value = value
        self.source = source
    }

    /// What the variable holds: nil when the expression gives no sample.
    public func evaluate(_ context: SampleContext) -> SampleValue? {
        switch value {
        case .expression(let e): return e.evaluate(context)
        case .format(let f): return .string(f.evaluate(context))
        }
    }

    public static func == (a: Self, b: Self) -> Bool { a.name == b.name && a.source == b.source }

    public struct Invalid: Error, Sendable {
        public let message: String
    }

    /// `text` compiled for `name`: a format when `isFormat`, else a sample expression (the
    /// global section's `set-var-fmt`/`set-var`, the CLI's `set var ... fmt|expr`).
    public static func compile(_ name: VariableName, _ text: String, isFormat: Bool,
                               context: RuleCompilationContext) throws(Invalid) -> GlobalVariableSetting {
        if isFormat {
            do { return GlobalVariableSetting(name: name, value: .format(try LogFormatString.parse(text, context: context)), source: text) }
            catch { throw Invalid(message: error.message) }
        }
        do { return GlobalVariableSetting(name: name, value: .expression(try SampleExpressionParser.parse(text, context: context)), source: text) }
        catch { throw Invalid(message: error.message) }
    }

    /// The first sample it reads that needs a stream (a client, a request...), which a
    /// process-wide variable has none of.
    public var streamExpression: SampleExpression? {
        let expressions: [SampleExpression]
        switch value {
        case .expression(let e): expressions = [e]
        case .format(let f): expressions = f.expressions
        }
        return expressions.first { !$0.fetch.uses.isSubset(of: .internalState) }
    }
}

/// A `userlist` section: users with password hashes or clear passwords, and groups.
public struct Userlist: Sendable, Equatable {
    public struct User: Sendable, Equatable {
        public var name: String
        /// A `crypt(3)` hash (`password`), or the clear text (`insecure-password`).
        public var password: String
        public var isHashed: Bool
        public var groups: Set<String>
        public init(name: String, password: String, isHashed: Bool, groups: Set<String>) {
            self.name = name
            self.password = password
            self.isHashed = isHashed
            self.groups = groups
        }
    }

    public var name: String
    public var users: [String: User] = [:]
    public var groups: Set<String> = []
    /// `group <name> users a,b`: applied to the users once the section is read.
    public var groupMembers: [String: [String]] = [:]
    public var location: SourceLocation

    /// Puts the users a `group ... users` line lists in that group.
    public mutating func resolveGroupMembers() {
        for (group, names) in groupMembers {
            for name in names { users[name]?.groups.insert(group) }
        }
    }

    public init(name: String, location: SourceLocation) {
        self.name = name
        self.location = location
    }
}
