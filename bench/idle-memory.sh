#!/usr/bin/env bash
# Memory per idle keep-alive connection: N clients each send one request through the proxy's
# HTTP frontend (proxy.cfg, nbthread 1) and then stay connected, idle, each with the server
# connection the proxy keeps for it; Debian's haproxy and hasp one after the other, and the
# resident memory growth per connection of each.
# Usage: bench/idle-memory.sh [connections]   (default 3000: nginx takes 4096; HASP= to override)
set -euo pipefail
cd "$(dirname "$0")"
N=${1:-3000}
DURATION=0
HASP=${HASP:-../.build/release/hasp}
HAPROXY=${HAPROXY:-/usr/sbin/haproxy}
OUT=out; mkdir -p "$OUT/www"
source ./lib.sh

rss() { awk '/VmRSS/ {print $2}' "/proc/$1/status"; }
for target in haproxy hasp; do
  bin=$HAPROXY; [ $target = hasp ] && bin=$HASP
  pid=$(start_proxy "$bin" "$target"); pids+=("$pid")
  wait_port "$PROXY_HTTP_PORT"
  python3 - "$PROXY_HTTP_PORT" "$N" "$pid" "$target" <<'PY'
import resource, socket, sys, time
port, n, pid, target = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4]
soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
def rss():
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmRSS"): return int(line.split()[1])
request = b"GET /small HTTP/1.1\r\nHost: bench\r\n\r\n"
def one():
    s = socket.create_connection(("127.0.0.1", port))
    s.sendall(request)
    data = b""
    while not data.endswith(b"nginx, a small response body\n"):
        chunk = s.recv(4096)
        if not chunk: raise SystemExit(f"{target}: connection closed")
        data += chunk
    return s
# Warm up (allocator arenas, pools), then measure from there.
warm = [one() for _ in range(200)]
for s in warm: s.close()
time.sleep(1)
before = rss()
held = [one() for _ in range(n)]
time.sleep(2)
after = rss()
print(f"{target}: {n} idle keep-alive connections, RSS {before} kB -> {after} kB: {(after - before) * 1024 / n:,.0f} bytes per connection")
for s in held: s.close()
PY
  stop_proxy "$pid"
done
