# Hasp: `make run` and `make test` are all a fresh Debian machine needs.
SWIFT ?= swift
CONFIG ?= examples/quickstart.cfg
PREFIX ?= /usr/local

# Debian packages the build, the tests and the benchmarks use.
DEB_BUILD_PACKAGES := pkg-config libssl-dev libpcre2-dev libcap-dev
DEB_TEST_PACKAGES := curl socat haproxy nginx-light wrk python3
DEB_PACKAGES := $(DEB_BUILD_PACKAGES) $(DEB_TEST_PACKAGES)

.PHONY: all build release run test unit-test deps check bench clean install

all: release

# Installs the missing Debian packages when run as root; otherwise prints the command to run.
deps:
	@missing=""; for p in $(DEB_PACKAGES); do \
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
	@command -v $(SWIFT) >/dev/null || { echo "Swift 6 toolchain not found (expected on PATH as '$(SWIFT)')"; exit 1; }

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
test: deps
	$(SWIFT) build $(RELEASE_FLAGS)
	$(SWIFT) build --build-tests
	HASP_BINARY=$(CURDIR)/.build/release/hasp $(SWIFT) test --skip-build

unit-test:
	$(SWIFT) test --filter 'SharedTests|WorkerTests'

bench: release
	./bench/run.sh

install: release
	install -D -m 0755 .build/release/hasp $(DESTDIR)$(PREFIX)/sbin/hasp
	install -D -m 0644 man/hasp.1 $(DESTDIR)$(PREFIX)/share/man/man1/hasp.1

clean:
	rm -rf .build
