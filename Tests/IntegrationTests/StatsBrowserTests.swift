import Foundation
import Testing

/// The statistics page in a real browser (headless Chromium, `make browser-test`): a person's
/// path through it — open the page, tick a server, choose an action, press Apply — and the
/// server really changes state. A driver page served by the same proxy (so that it may script
/// the page in its frame) does the clicking and writes what it saw into its title.
@Suite(.serialized) struct StatsBrowserTests {
    static let chromium = "/usr/bin/chromium"
    static let enabled = FileManager.default.isExecutableFile(atPath: chromium)
        || ProcessInfo.processInfo.environment["HASP_BROWSER_TEST"] != nil

    static let driver = """
    <!DOCTYPE html><html><head><title>pending</title></head><body>
    <iframe id="page" src="/stats" width="1400" height="900"></iframe>
    <script>
    const frame = document.getElementById('page');
    let submitted = false;
    frame.onload = () => {
      const d = frame.contentDocument;
      if (!submitted) {
        submitted = true;
        const box = d.querySelector('input[name=s][value=s1]');
        if (!box) { document.title = 'result:no-checkbox'; return; }
        box.checked = true;
        d.querySelector('select[name=action]').value = 'maint';
        box.form.querySelector('button[type=submit]').click();
        return;
      }
      const banner = d.querySelector('.banner');
      const row = d.querySelector('input[name=s][value=s1]').closest('tr');
      document.title = 'result:' + (banner ? banner.className : 'none') + ':' + row.className + ':' + d.location.href.split('/').pop();
    };
    </script></body></html>
    """

    @Test(.enabled(if: StatsBrowserTests.enabled, "needs chromium (make browser-test)"))
    func adminFormWorksInARealBrowser() throws {
        let backend = try TestBackend(name: "app")
        defer { backend.stop() }
        let dir = try TempDir()
        let driver = try dir.write("driver.html", Self.driver)
        let port = try Ports.free()
        let hasp = try Hasp(config: """
            global
                stats socket @DIR@/admin.sock level admin
            defaults
                mode http
                timeout connect 2s
                timeout client 5s
                timeout server 5s
            listen stats
                bind 127.0.0.1:\(port)
                http-request return status 200 content-type text/html file \(driver) if { path /driver }
                stats enable
                stats uri /stats
                stats admin if TRUE
            backend app
                server s1 127.0.0.1:\(backend.port)
                server s2 127.0.0.1:\(backend.port)

            """, waitFor: [port])
        defer { hasp.stop() }
        let profile = try TempDir()
        let result = try run(Self.chromium, ["--headless=new", "--no-sandbox", "--disable-gpu", "--no-first-run",
                                             "--user-data-dir=\(profile.url.path)", "--virtual-time-budget=15000",
                                             "--dump-dom", "http://127.0.0.1:\(port)/driver"], timeout: 90)
        let title = result.stdout.components(separatedBy: "<title>").dropFirst().first?.components(separatedBy: "</title>").first
        #expect(title == "result:banner ok:maintain:stats;st=DONE", "\(result.stdout.prefix(400)) \(result.stderr.suffix(400))")
        let state = try CLIClient.ask(hasp.dir.path("admin.sock"), "show servers state app")
        let s1 = state.split(separator: "\n").first { $0.split(separator: " ").count > 6 && $0.split(separator: " ")[3] == "s1" }
        #expect(s1?.split(separator: " ")[6] == "1", "\(state)")
    }
}
