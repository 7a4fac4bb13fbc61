import Testing
@testable import Shared

/// PCRE2 through the system-library target: compiled once, JIT where available.
@Suite struct RegexTests {
    @Test func matchesAnywhereUnlessAnchored() throws {
        let r = try Regex("^/api/v[0-9]+/")
        #expect(r.matches("/api/v2/users"))
        #expect(!r.matches("/static/api/v2/"))
        #expect(try Regex("admin").matches("/x/admin/y"))
        #expect(!(try Regex("admin").matches("")))
        #expect(try Regex("^$").matches(""))
    }

    @Test func caseInsensitiveAsACLsDashI() throws {
        #expect(!(try Regex("^/ADMIN")).matches("/admin"))
        #expect(try Regex("^/ADMIN", caseInsensitive: true).matches("/admin"))
    }

    @Test func capturesAreByteRanges() throws {
        let r = try Regex("^/(user)s?/([0-9]+)(x)?")
        let m = try #require(r.firstMatch(in: "/users/42/edit"))
        #expect(m.count == 4)
        #expect(m[0] == 0..<9)
        #expect(m[1] == 1..<5)
        #expect(m[2] == 7..<9)
        #expect(m[3] == nil)
        #expect(r.firstMatch(in: "/nope") == nil)
    }

    @Test func aBadPatternSaysWhatAndWhere() {
        #expect(throws: Regex.CompileError.self) { try Regex("a(b") }
        do {
            _ = try Regex("a(b")
        } catch {
            #expect(error.message.contains("missing closing parenthesis"))
            #expect(error.offset == 3)
        }
    }

    @Test func theJITIsUsedWhereTheMachineHasIt() throws {
        // x86_64 and arm64 builds of Debian's PCRE2 have the JIT; elsewhere matching still works.
        #if arch(x86_64) || arch(arm64)
        #expect(try Regex("a+b").isJIT)
        #endif
    }
}
