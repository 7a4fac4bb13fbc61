# Hasp: `make run` and `make test` are all a fresh Debian machine needs.
SWIFT ?= swift
CONFIG ?= examples/quickstart.cfg
PREFIX ?= /usr/local

# Debian packages the build and the tests use (the Swift toolchain comes with the machine),
# and the ones only the benchmarks need (installed by `make bench`).
DEB_PACKAGES := curl ca-certificates pkg-config libpcre2-dev libcrypt-dev libssl-dev libc-ares-dev libcap-dev
DEB_BENCH_PACKAGES := haproxy nginx-light wrk python3
# The test suite also drives hatop (in a tmux pane) against the runtime API, and reads the
# traffic logs with halog (from the haproxy package).
DEB_TEST_PACKAGES := hatop tmux haproxy openssl python3 dnsmasq-base

.PHONY: all build release run test unit-test deps test-deps bench-deps install-packages check bench clean install promtool browser-test

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
# the code data-race free, and the flag must reach the dependencies too.
RELEASE_FLAGS := -c release -Xswiftc -enforce-exclusivity=unchecked

release: deps
	$(SWIFT) build $(RELEASE_FLAGS)

run: release
	./.build/release/hasp -db -f $(CONFIG)

check: release
	./.build/release/hasp -c -V -f $(CONFIG)

# The whole suite: unit tests and integration tests against the real binary.
# Integration tests drive the release binary, the one that ships: a debug build of SwiftNIO
# asserts that every readable event yields data, which two processes accepting on one shared
# listening socket (the reload hand-over window) legitimately violate.
test: test-deps
	$(SWIFT) build $(RELEASE_FLAGS)
	$(SWIFT) build --build-tests
	HASP_BINARY=$(CURDIR)/.build/release/hasp $(SWIFT) test --skip-build

unit-test:
	$(SWIFT) test --filter 'SharedTests|WorkerTests'

bench: release bench-deps
	./bench/run.sh
	./bench/reload.py

install: release
	install -D -m 0755 .build/release/hasp $(DESTDIR)$(PREFIX)/sbin/hasp
	install -D -m 0644 man/hasp.1 $(DESTDIR)$(PREFIX)/share/man/man1/hasp.1

clean:
	rm -rf .build
