/// Parses HAProxy-syntax configuration text into a `Configuration`.
///
/// Like HAProxy it keeps going after an error so that one run reports every problem; the caller
/// treats any alert as fatal. Messages reproduce HAProxy's wording, with `[file:line]`.
public struct ConfigParser {
    public struct Result: Sendable {
        public var configuration: Configuration
        public var diagnostics: [Diagnostic]
        /// What the files changed in the environment, for the binary to apply
        /// (`environment.applyToProcess()`) once it keeps this result.
        public var environment: ConfigEnvironment
        public var hasErrors: Bool { diagnostics.contains { $0.level == .alert } }
        public var hasWarnings: Bool { diagnostics.contains { $0.level == .warning } }
    }

    /// One source: a file name for messages and its bytes.
    public struct Source: Sendable {
        public var name: String
        public var text: String
        /// A file read from disk: without a final line feed it may have been truncated, and
        /// HAProxy refuses it.
        public var mustEndWithLineFeed: Bool
        public init(name: String, text: String, mustEndWithLineFeed: Bool = false) {
            self.name = name
            self.text = text
            self.mustEndWithLineFeed = mustEndWithLineFeed
        }
    }

    enum Section {
        case none
        case global
        case proxy(ProxySettings)
        case userlist(Userlist)
        case httpErrors(String, [Int: [UInt8]])
        case ring(RingSettings)
        case peers(PeersSettings)
        case resolvers(ResolversSettings)
        /// A section Hasp recognises but does not implement; its lines are skipped.
        case ignored(String)
    }

    struct ConditionFrame {
        var active: Bool        // lines in the current branch are used
        var anyTaken: Bool      // some branch of this block was already taken
        var parentActive: Bool
        var sawElse: Bool
    }

    var config = Configuration()
    var diagnostics: [Diagnostic] = []
    var section: Section = .none
    var currentDefaults: ProxySettings
    var file = ""
    var lineNumber = 0
    var erroredFiles: [String] = []
    var fileHadError = false
    let lexer: LineLexer
    let conditions: ConditionEvaluator
    /// The environment the files see, with their own `setenv`s; never the process's own.
    let environment: ConfigEnvironment
    /// Where TLS files come from (the disk, recorded; or what a master recorded).
    let files: ConfigFiles
    /// Stick tables named by rules, checked at the end.
    let tableReferences = StickTableReferences()
    /// The proxy section being read (the default table of `src_*` fetches).
    var currentProxyName: String?
    /// Whether the section being read can be a backend (`backend`, `listen`, `defaults`): its
    /// request rules may read the backend (`be_name`), as in HAProxy.
    var currentProxyIsBackend = false

    /// `-L <name>`: the local peer's name, over the `localpeer` keyword.
    let localPeerOption: String?
    /// `httpclient.resolvers.id`: checked once every section is read.
    var httpClientResolvers: String?
    /// Alerts haproxy prints after a server keyword's own (a CA file it could not load).
    var alertsAfterKeywordFailure: [String] = []
    /// `default-path`: where relative paths of the configuration start.
    var defaultPath = DefaultPath.current

    public init(lexer: LineLexer = LineLexer(), conditions: ConditionEvaluator = ConditionEvaluator(),
                files: ConfigFiles = ConfigFiles(), localPeer: String? = nil) {
        let environment = ConfigEnvironment(base: lexer.environment)
        self.environment = environment
        var lexer = lexer
        lexer.environment = { environment.get($0) }
        self.lexer = lexer
        var conditions = conditions
        let baseIsDefined = conditions.isDefined
        conditions.isDefined = { name in environment.change(for: name).map { $0 != nil } ?? baseIsDefined(name) }
        self.conditions = conditions
        self.files = files
        localPeerOption = localPeer
        if let localPeer { config.localPeer = localPeer }
        // As in HAProxy, the files may name the local peer `${HAPROXY_LOCALPEER}`.
        environment.set("HAPROXY_LOCALPEER", config.localPeer)
        currentDefaults = ProxySettings(kind: .defaults, name: "", location: SourceLocation(file: "", line: 0))
        // HAProxy's built-in default mode is tcp; a proxy without any defaults gets it.
    }

    public static func parse(_ sources: [Source], lexer: LineLexer = LineLexer(),
                             conditions: ConditionEvaluator = ConditionEvaluator(),
                             files: ConfigFiles = ConfigFiles(), localPeer: String? = nil) -> Result {
        var parser = ConfigParser(lexer: lexer, conditions: conditions, files: files, localPeer: localPeer)
        let outerBase = FileReader.baseDirectory
        for source in sources { parser.parseFile(source) }
        FileReader.baseDirectory = outerBase
        parser.finish()
        return Result(configuration: parser.config, diagnostics: parser.diagnostics, environment: parser.environment)
    }

    // MARK: - Messages

    var here: SourceLocation { SourceLocation(file: file, line: lineNumber) }

    mutating func alert(_ text: String) {
        diagnostics.append(Diagnostic(.alert, "config : " + text))
        fileHadError = true
    }

    mutating func warn(_ text: String) {
        diagnostics.append(Diagnostic(.warning, "config : " + text))
    }

    mutating func parsingAlert(_ text: String) { alert("parsing [\(file):\(lineNumber)] : \(text)") }
    mutating func parsingWarning(_ text: String) { warn("parsing [\(file):\(lineNumber)] : \(text)") }

    // MARK: - Files and lines

    mutating func parseFile(_ source: Source) {
        closeSection()
        section = .none
        file = source.name
        fileHadError = false
        config.files.append(source.name)
        FileReader.baseDirectory = defaultPath.base(forFile: source.name)
        var stack: [ConditionFrame] = []
        var number = 0
        // Lines end at LF bytes: splitting on the Character "\n" would not split at CRLF,
        // which Swift reads as a single Character (a file from a Windows editor became one line).
        var lines = source.text.utf8.split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: false).map(Substring.init)
        if lines.last?.isEmpty == true { lines.removeLast() }
        for rawLine in lines {
            number += 1
            lineNumber = number
            var line = rawLine
            if line.utf8.last == UInt8(ascii: "\r") { line = Substring(line.utf8.dropLast()) }
            let words: [String]
            do {
                words = try lexer.words(line)
            } catch {
                if stack.allSatisfy(\.active) { reportLexError(error) }
                continue
            }
            guard let first = words.first else { continue }
            if first.hasPrefix(".") && handleDirective(words, &stack) { continue }
            guard stack.allSatisfy(\.active) else { continue }
            handleLine(words)
        }
        if !stack.isEmpty {
            alert("parsing [\(file):\(lineNumber)]: non-terminated '.if' block.")
        }
        if source.mustEndWithLineFeed, let last = lines.last, source.text.utf8.last != UInt8(ascii: "\n") {
            alert("parsing [\(file):\(number)]: Missing LF on last line, file might have been truncated at position \(last.utf8.count + 1).")
        }
        closeSection()
        section = .none
        if fileHadError { erroredFiles.append(source.name) }
    }

    mutating func reportLexError(_ error: LineLexer.LexError) {
        switch error {
        case .unmatchedQuote(let q):
            alert("parsing [\(file):\(lineNumber)] : unmatched quote (\(q)).")
        case .unfinishedEnvironmentVariable:
            alert("parsing [\(file):\(lineNumber)] : unterminated environment variable name.")
        case .invalidEscape(let e):
            alert("parsing [\(file):\(lineNumber)] : truncated or invalid hexadecimal sequence at '\(e)'.")
        case .tooManyWords(let n):
            alert("parsing [\(file):\(lineNumber)] : too many words (\(n)), truncating after word \(LineLexer.maximumWords).")
        }
    }

    /// Returns true when the line was a conditional or message directive.
    mutating func handleDirective(_ words: [String], _ stack: inout [ConditionFrame]) -> Bool {
        let directive = words[0]
        let active = stack.allSatisfy(\.active)
        let expression = words.dropFirst().joined(separator: " ")
        let position = "parsing [\(file):\(lineNumber)]"
        switch directive {
        case ".if":
            var value = false
            if active {
                do { value = try conditions.evaluate(expression) } catch {
                    alert("\(position): \(error.message) in '.if'.")
                }
            }
            stack.append(ConditionFrame(active: active && value, anyTaken: value, parentActive: active, sawElse: false))
        case ".elif":
            guard var frame = stack.popLast(), !frame.sawElse else {
                alert("\(position): lone '.elif' with no matching '.if'.")
                return true
            }
            var value = false
            if frame.parentActive && !frame.anyTaken {
                do { value = try conditions.evaluate(expression) } catch {
                    alert("\(position): \(error.message) in '.elif'.")
                }
            }
            frame.active = frame.parentActive && !frame.anyTaken && value
            frame.anyTaken = frame.anyTaken || value
            stack.append(frame)
        case ".else":
            guard var frame = stack.popLast(), !frame.sawElse else {
                alert("\(position): lone '.else' with no matching '.if'.")
                return true
            }
            if words.count > 1 { alert("\(position): Unexpected argument '\(words[1])' for '.else'.") }
            frame.active = frame.parentActive && !frame.anyTaken
            frame.anyTaken = true
            frame.sawElse = true
            stack.append(frame)
        case ".endif":
            if words.count > 1 {
                alert("\(position): Unexpected argument '\(words[1])' for '.endif'.")
                return true
            }
            if stack.popLast() == nil { alert("\(position): lone '.endif' with no matching '.if'.") }
        case ".notice", ".warning", ".alert", ".diag":
            guard active else { return true }
            let message = "\(position): '\(expression)'."
            switch directive {
            case ".notice": diagnostics.append(Diagnostic(.notice, "config : " + message))
            case ".warning": warn(message)
            case ".alert": alert(message)
            default: diagnostics.append(Diagnostic(.diag, "config : " + message))
            }
        default:
            return false
        }
        return true
    }

    // MARK: - Sections

    static let sectionKeywords: Set<String> = ["global", "defaults", "frontend", "backend", "listen", "userlist", "http-errors", "ring", "peers",
                                               "resolvers"]
    static let ignoredSections: Set<String> = [
        "mailers", "program", "cache",
        "crt-store", "traces", "log-forward",
    ]

    /// HAProxy's messages for a section opened without its name.
    static let missingSectionName: [String: String] = [
        "userlist": "'userlist' expects <name> as arguments.",
        "peers": "missing name for peers section.",
        "resolvers": "missing name for resolvers section.",
        "mailers": "missing name for mailers section.",
        "http-errors": "missing name for http-errors section.",
        "cache": "'cache' expects a <name> argument",
        "ring": "missing ring name.",
        "program": "'program' expects an <id> argument",
        "log-forward": "missing name for ip-forward section.",
    ]

    /// Characters HAProxy allows in proxy and server names.
    static func isNameCharacter(_ c: Character) -> Bool {
        c.isASCII && (c.isLetter || c.isNumber || "-_.:".contains(c))
    }

    mutating func handleLine(_ words: [String]) {
        let keyword = words[0]
        if Self.sectionKeywords.contains(keyword) {
            openSection(words)
            return
        }
        if Self.ignoredSections.contains(keyword) {
            closeSection()
            if words.count < 2, let message = Self.missingSectionName[keyword] {
                parsingAlert(message)
                section = .ignored(keyword)
                return
            }
            warn("parsing [\(file):\(lineNumber)] : section '\(keyword)' is not supported by Hasp yet; its content is ignored.")
            section = .ignored(keyword)
            return
        }
        switch section {
        case .none:
            alert("parsing [\(file):\(lineNumber)]: unknown keyword '\(keyword)' out of section.")
        case .global:
            parseGlobal(words)
        case .proxy(var proxy):
            // The section lets go of its copy first: edited while shared, the proxy's arrays
            // (10,000 `server` lines) would be copied whole on every line.
            section = .none
            parseProxy(words, &proxy)
            section = .proxy(proxy)
        case .userlist(var list):
            section = .none
            parseUserlistLine(words, &list)
            section = .userlist(list)
        case .ring(var ring):
            parseRingLine(words, &ring)
            section = .ring(ring)
        case .peers(var peers):
            section = .none
            parsePeersLine(words, &peers)
            section = .peers(peers)
        case .resolvers(var resolvers):
            parseResolversLine(words, &resolvers)
            section = .resolvers(resolvers)
        case .httpErrors(let name, var pages):
            if words[0] == "errorfile" {
                if let (code, bytes) = parseErrorFile(words) { pages[code] = bytes }
            } else {
                unknownKeyword(words[0], section: "http-errors", candidates: ["errorfile"])
            }
            section = .httpErrors(name, pages)
        case .ignored:
            break
        }
    }

    mutating func openSection(_ words: [String]) {
        closeSection()
        let keyword = words[0]
        if keyword == "global" {
            section = .global
            return
        }
        if keyword == "http-errors" {
            guard words.count >= 2 else {
                parsingAlert(Self.missingSectionName["http-errors"]!)
                section = .ignored(keyword)
                return
            }
            section = .httpErrors(words[1], [:])
            return
        }
        if keyword == "ring" {
            guard words.count >= 2 else {
                parsingAlert(Self.missingSectionName["ring"]!)
                section = .ignored(keyword)
                return
            }
            section = .ring(RingSettings(name: words[1]))
            return
        }
        if keyword == "resolvers" {
            let taken = words.count >= 2 ? config.resolvers[words[1]] : nil
            if let name = openedSectionName(words, duplicate: taken.map {
                "parsing [\(file):\(lineNumber)] : resolvers '\(words[1])' has same name as another resolvers (declared at \($0.location))."
            }) {
                var settings = ResolversSettings(name: name, location: here)
                settings.order = config.resolvers.count
                section = .resolvers(settings)
            }
            return
        }
        if keyword == "peers" {
            let taken = words.count >= 2 ? config.peers[words[1]] : nil
            if let name = openedSectionName(words, duplicate: taken.map {
                "parsing [\(file):\(lineNumber)] : 'peers' section '\(words[1])' has the same name as another peers section declared at \($0.location)."
            }) {
                section = .peers(PeersSettings(name: name, location: here))
            }
            return
        }
        if keyword == "userlist" {
            guard words.count >= 2 else {
                parsingAlert(Self.missingSectionName["userlist"]!)
                section = .ignored(keyword)
                return
            }
            if let existing = config.userlists[words[1]] {
                parsingAlert("sec 'userlist': ignoring duplicated userlist '\(words[1])' declared at \(existing.location).")
                section = .ignored(keyword)
                return
            }
            section = .userlist(Userlist(name: words[1], location: here))
            return
        }
        let kind = ProxyKind(rawValue: keyword)!
        var name = ""
        var fromName: String? = nil
        var rest = words.dropFirst()
        if let first = rest.first, first != "from" {
            name = first
            rest = rest.dropFirst()
        }
        if rest.first == "from" {
            guard rest.count >= 2 else {
                parsingAlert("'\(keyword)' : 'from' expects a defaults section name.")
                section = .ignored(keyword)
                return
            }
            fromName = rest[rest.index(after: rest.startIndex)]
            rest = rest.dropFirst(2)
        }
        if let extra = rest.first {
            // `backend a b from web`: a second name, or words after the defaults' name.
            parsingAlert("'\(keyword)' cannot handle unexpected argument '\(extra)'.")
            section = .ignored(keyword)
            return
        }
        if name.isEmpty && kind != .defaults {
            parsingAlert("'\(keyword)' expects an <id> argument")
            section = .ignored(keyword)
            return
        }
        if let bad = name.first(where: { !Self.isNameCharacter($0) }) {
            parsingAlert("character '\(bad)' is not permitted in '\(keyword)' name '\(name)'.")
            section = .ignored(keyword)
            return
        }
        var base = currentDefaults
        if let fromName {
            guard let named = config.namedDefaults[fromName] else {
                parsingAlert("defaults section '\(fromName)' not found for \(keyword) '\(name)'.")
                section = .ignored(keyword)
                return
            }
            base = named
        }
        if kind != .defaults, let existing = config.proxies.first(where: {
            $0.name == name && !$0.capabilities.intersection(kind.capabilities).isEmpty
        }) {
            alert("Parsing [\(file):\(lineNumber)]: \(kind.rawValue) '\(name)' has the same name as \(existing.kind.rawValue) '\(name)' declared at \(existing.location).")
        }
        section = .proxy(base.inherit(as: kind, name: name, location: here))
        currentProxyName = name.isEmpty ? nil : name
        currentProxyIsBackend = kind == .defaults || kind.capabilities.contains(.backend)
    }

    mutating func closeSection() {
        if case .httpErrors(let name, let pages) = section {
            config.httpErrors[name] = pages
        }
        if case .ring(let ring) = section {
            config.rings[ring.name] = ring
        }
        if case .peers(let peers) = section {
            config.peers[peers.name] = peers
        }
        if case .resolvers(let resolvers) = section {
            config.resolvers[resolvers.name] = resolvers
        }
        if case .userlist(var list) = section {
            list.resolveGroupMembers()
            for user in list.users.values.sorted(by: { $0.name < $1.name }) {
                for group in user.groups.sorted() where !list.groups.contains(group) {
                    diagnostics.append(Diagnostic(.alert, "config : userlist '\(list.name)': no such group '\(group)' specified in user '\(user.name)'"))
                }
            }
            config.userlists[list.name] = list
        }
        if case .proxy(let proxy) = section {
            if proxy.kind == .defaults {
                currentDefaults = proxy
                if !proxy.name.isEmpty { config.namedDefaults[proxy.name] = proxy }
            } else {
                var p = proxy
                // HAProxy numbers proxies in the order of the file, the runtime API's own
                // ("GLOBAL", when there is a stats socket) first; `id` sets one by hand.
                if p.id == 0 { p.id = config.proxies.count + 1 + (config.global.statsSockets.isEmpty ? 0 : 1) }
                config.proxies.append(p)
            }
        }
        section = .none
        currentProxyName = nil
        currentProxyIsBackend = false
    }
}
