# Hasp: `make run` and `make test` are all a fresh Debian machine needs.
SWIFT ?= swift
CONFIG ?= examples/quickstart.cfg
PREFIX ?= /usr/local
# `make install` paths: the binary and manuals under PREFIX, configuration and init files where
# the system looks for them (as Debian's package lays them out).
DESTDIR ?=
SYSCONFDIR ?= /etc
UNITDIR ?= /lib/systemd/system
TMPFILESDIR ?= /usr/lib/tmpfiles.d
BINARY ?= .build/release/hasp

# Debian packages the build and the tests use (the Swift toolchain comes with the machine),
# and the ones only the benchmarks need (installed by `make bench`).
DEB_PACKAGES := curl ca-certificates pkg-config libpcre2-dev libcrypt-dev libssl-dev libc-ares-dev libcap-dev libxxhash-dev
DEB_BENCH_PACKAGES := haproxy nginx-light wrk python3
# The test suite also drives hatop (in a tmux pane) against the runtime API, and reads the
# traffic logs with halog (from the haproxy package); socat relays a name server over TCP.
DEB_TEST_PACKAGES := hatop tmux haproxy openssl python3 dnsmasq-base socat

.PHONY: all build release run test unit-test deps test-deps bench-deps install-packages check bench clean install install-files promtool browser-test deb deb-deps deb-test bench-floor

all: release

# Installs the missing Debian packages when run as root; otherwise prints the command to run.
deps:
	@$(MAKE) --no-print-directory install-packages PACKAGES="$(DEB_PACKAGES)"
	@command -v $(SWIFT) >/dev/null || { echo "Swift 6 toolchain not found (expected on PATH as '$(SWIFT)')"; exit 1; }

test-deps: deps
	@$(MAKE) --no-print-directory install-packages PACKAGES="$(DEB_TEST_PACKAGES)"
	@$(MAKE) --no-print-directory promtool

# Prometheus' linter, which the exporter's tests run. Only the tool is taken from Debian's
# `prometheus` package (installing the package would also start a Prometheus server).
PROMTOOL := .build/tools/promtool
promtool:
	@if [ ! -x $(PROMTOOL) ] && ! command -v promtool >/dev/null; then \
	  echo "fetching promtool from Debian's prometheus package"; \
	  tmp=$$(mktemp -d) && cd $$tmp && \
	  { apt-get download prometheus >/dev/null 2>&1 || { apt-get update -qq && apt-get download prometheus; }; } && \
	  dpkg-deb -x prometheus_*.deb root && cd - >/dev/null && \
	  mkdir -p .build/tools && cp $$tmp/root/usr/bin/promtool $(PROMTOOL) && rm -rf $$tmp; \
	fi

# The statistics page in a real browser: headless Chromium loads the page, submits the admin
# form and the test checks the server changed state (about a minute; installs chromium).
browser-test: release
	@$(MAKE) --no-print-directory install-packages PACKAGES="chromium"
	$(SWIFT) build --build-tests
	HASP_BINARY=$(CURDIR)/.build/release/hasp HASP_BROWSER_TEST=1 $(SWIFT) test --skip-build --filter StatsBrowserTests

bench-deps:
	@$(MAKE) --no-print-directory install-packages PACKAGES="$(DEB_BENCH_PACKAGES)"

install-packages:
	@missing=""; for p in $(PACKAGES); do \
	  dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "install ok installed" || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ]; then \
	    echo "installing:$$missing"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing; \
	  else \
	    echo "missing Debian packages; run: sudo apt-get install$$missing"; exit 1; \
	  fi; \
	fi

build: deps
	$(SWIFT) build

# Exclusivity checks cost a few percent on the proxy path; the Swift 6 compiler already proves
# the code data-race free, and the flag must reach the dependencies too. The Swift runtime is
# linked statically: the binary needs only Debian's libraries at run time, and the one the
# tests run is the one the package ships.
# Symbols are bound at start and the relocations made read-only then (Debian's hardening).
RELEASE_FLAGS := -c release -Xswiftc -enforce-exclusivity=unchecked --static-swift-stdlib -Xlinker -z -Xlinker now -Xlinker -z -Xlinker relro

release: deps
	$(SWIFT) build $(RELEASE_FLAGS) --product hasp

run: release
	./.build/release/hasp -db -f $(CONFIG)

check: release
	./.build/release/hasp -c -V -f $(CONFIG)

# The whole suite: unit tests and integration tests against the real binary.
# Integration tests drive the release binary, the one that ships: a debug build of SwiftNIO
# asserts that every readable event yields data, which two processes accepting on one shared
# listening socket (the reload hand-over window) legitimately violate.
test: test-deps
	$(SWIFT) build $(RELEASE_FLAGS) --product hasp
	$(SWIFT) build --build-tests
	HASP_BINARY=$(CURDIR)/.build/release/hasp $(SWIFT) test --skip-build

unit-test:
	$(SWIFT) test --filter 'SharedTests|WorkerTests'

bench: release bench-deps
	./bench/run.sh
	./bench/reload.py

# Debian's haproxy, hasp and a bare SwiftNIO relay (bench/nio-relay) on the same load: where
# NIO's channel layer puts the floor (about 3 minutes).
bench-floor: release bench-deps
	$(SWIFT) build $(RELEASE_FLAGS) --product nio-relay
	./bench/floor.sh

# The same tree as the Debian package, without it: `make install DESTDIR=/tmp/root PREFIX=/usr`.
install: release
	@$(MAKE) --no-print-directory install-files

install-files:
	install -D -m 0755 $(BINARY) $(DESTDIR)$(PREFIX)/sbin/hasp
	install -D -m 0644 man/hasp.1 $(DESTDIR)$(PREFIX)/share/man/man1/hasp.1
	install -D -m 0644 man/hasp.cfg.5 $(DESTDIR)$(PREFIX)/share/man/man5/hasp.cfg.5
	install -D -m 0644 contrib/config/hasp.cfg $(DESTDIR)$(SYSCONFDIR)/hasp/hasp.cfg
	install -d $(DESTDIR)$(SYSCONFDIR)/hasp/errors
	install -m 0644 contrib/errors/*.http $(DESTDIR)$(SYSCONFDIR)/hasp/errors/
	install -D -m 0644 contrib/default/hasp $(DESTDIR)$(SYSCONFDIR)/default/hasp
	sed 's|/usr/sbin/hasp|$(PREFIX)/sbin/hasp|' contrib/init.d/hasp > contrib/init.d/hasp.out
	install -D -m 0755 contrib/init.d/hasp.out $(DESTDIR)$(SYSCONFDIR)/init.d/hasp && rm -f contrib/init.d/hasp.out
	sed 's|/usr/sbin/hasp|$(PREFIX)/sbin/hasp|' contrib/systemd/hasp.service > contrib/systemd/hasp.service.out
	install -D -m 0644 contrib/systemd/hasp.service.out $(DESTDIR)$(UNITDIR)/hasp.service && rm -f contrib/systemd/hasp.service.out
	install -D -m 0644 contrib/tmpfiles.d/hasp.conf $(DESTDIR)$(TMPFILESDIR)/hasp.conf
	install -D -m 0644 contrib/logrotate/hasp $(DESTDIR)$(SYSCONFDIR)/logrotate.d/hasp
	install -D -m 0644 contrib/rsyslog/49-hasp.conf $(DESTDIR)$(SYSCONFDIR)/rsyslog.d/49-hasp.conf
	install -d $(DESTDIR)/var/lib/hasp/dev
	install -D -m 0644 README.md $(DESTDIR)$(PREFIX)/share/doc/hasp/README.md
	install -d $(DESTDIR)$(PREFIX)/share/doc/hasp/examples
	install -m 0644 examples/*.cfg $(DESTDIR)$(PREFIX)/share/doc/hasp/examples/

# The Debian package, built from this tree (about 12 minutes from a clean checkout, mostly the
# Swift build; a minute when `make release` is done). The .deb, .buildinfo and .changes land in
# dist/.
DEB_BUILD_PACKAGES := dpkg-dev debhelper fakeroot lintian
DEB_TEST_TOOLS := rsyslog socat curl systemd
deb-deps: deps
	@$(MAKE) --no-print-directory install-packages PACKAGES="$(DEB_BUILD_PACKAGES)"

deb: deb-deps
	dpkg-buildpackage -us -uc -b
	mkdir -p dist
	mv ../hasp_$$(dpkg-parsechangelog -S Version)_* dist/
	lintian --fail-on error --display-info dist/hasp_*.changes

# Builds the package, then installs it on this machine and drives it through its init
# script (start, status, reload under traffic, restart, stop), with rsyslog's socket layout;
# removes it at the end. About 2 minutes after `make test` (12 from a clean checkout); needs root.
deb-test: deb
	@$(MAKE) --no-print-directory install-packages PACKAGES="$(DEB_TEST_TOOLS) $(DEB_TEST_PACKAGES)"
	$(SWIFT) build --build-tests
	HASP_DEB=$$(ls $(CURDIR)/dist/hasp_*.deb | tail -1) $(SWIFT) test --skip-build --filter PackageTests

clean:
	rm -rf .build
