/// A value with HAProxy's metadata, for the `typed` and `json` forms of `show info` and
/// `show stat`: its position, name, tags (origin, nature, scope) and type.
struct TypedValue {
    enum Kind: String { case str, u32, s32, u64, s64 }

    var position: Int
    var name: String
    /// Three letters: origin (M S K C P), nature (A a C D G L M m N O R T), scope (C P S s).
    var tags: String
    var kind: Kind
    var text: String
    var description: String = ""

    /// Tags as printed: the three letters (HAProxy 2.6 prints no fourth one).
    var typedTags: String { tags }

    var typedValue: String { "\(kind.rawValue):\(text)" }

    func json(prefix: String) -> String {
        let letters = Array(tags)
        let origin = Self.origins[letters[0]] ?? "Unknown"
        let nature = Self.natures[letters[1]] ?? "Unknown"
        let scope = Self.scopes[letters[2]] ?? "Unknown"
        let value = kind == .str ? "\"\(JSONText.escape(text))\"" : (text.isEmpty ? "0" : text)
        return "{\(prefix)\"field\":{\"pos\":\(position),\"name\":\"\(JSONText.escape(name))\"},\"processNum\":1,"
            + "\"tags\":{\"origin\":\"\(origin)\",\"nature\":\"\(nature)\",\"scope\":\"\(scope)\"},"
            + "\"value\":{\"type\":\"\(kind.rawValue)\",\"value\":\(value)}}"
    }

    static let origins: [Character: String] = ["M": "Metric", "S": "Status", "K": "Key", "C": "Config", "P": "Product"]
    static let natures: [Character: String] = ["A": "Age", "a": "Avg", "C": "Counter", "D": "Duration", "G": "Gauge",
                                               "L": "Limit", "M": "Max", "m": "Min", "N": "Name", "O": "Output",
                                               "R": "Rate", "T": "Time"]
    static let scopes: [Character: String] = ["C": "Cluster", "P": "Process", "S": "Service", "s": "System"]
}

enum JSONText {
    static func escape(_ s: String) -> String {
        var out = ""
        for scalar in s.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            default:
                if scalar.value < 0x20 {
                    let hex = String(scalar.value, radix: 16)
                    out += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
                } else {
                    out.unicodeScalars.append(scalar)
                }
            }
        }
        return out
    }
}

/// Output options shared by `show info` and `show stat`.
struct ReportFormat {
    enum Style { case plain, typed, json }
    var style: Style = .plain
    var withDescription = false
    var upOnly = false
    var noMaint = false

    /// Consumes the format words it knows; returns the others.
    static func parse(_ words: ArraySlice<String>) -> (ReportFormat, [String]) {
        var format = ReportFormat()
        var rest: [String] = []
        for word in words {
            switch word {
            case "typed": format.style = .typed
            case "json": format.style = .json
            case "desc": format.withDescription = true
            case "up": format.upOnly = true
            case "no-maint": format.noMaint = true
            case "float": break
            default: rest.append(word)
            }
        }
        return (format, rest)
    }
}
