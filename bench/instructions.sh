#!/usr/bin/env bash
# Counts the instructions hasp executes per request and per connection, under callgrind: the
# same count on every run, so two binaries compare on this noisy VM without alternating runs.
# Each binary serves N1 then N2 requests (one keep-alive connection, then one connection per
# request) from a sequential client; the difference over N2 - N1 removes start-up and exit.
# Usage: bench/instructions.sh BINARY [BINARY...]      (about a minute per binary)
# RULES=1 sends the requests to the rules frontend (keep-alive only); any binary that takes
# HAProxy's command line works, Debian's haproxy included.
set -euo pipefail
binaries=(); for b in "$@"; do binaries+=("$(realpath "$b")"); done
cd "$(dirname "$0")"
DURATION=0
OUT=out; mkdir -p "$OUT/www"
source ./lib.sh
N1=${N1:-200}; N2=${N2:-1200}

count() { # binary requests mode -> total instructions
  # Valgrind 3.19 cannot read the DWARF 5 Swift emits: run a copy without debug information.
  strip --strip-debug -o "$OUT/measured.bin" "$1" || { echo "cannot read $1" >&2; exit 1; }
  valgrind --tool=callgrind --callgrind-out-file="$OUT/callgrind.out" "$OUT/measured.bin" -db -f proxy.cfg > "$OUT/valgrind.log" 2>&1 &
  local pid=$!; pids+=("$pid")
  local port=$PROXY_HTTP_PORT; [ -n "${RULES:-}" ] && port=$PROXY_RULES_PORT
  for _ in $(seq 300); do (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break; sleep 0.1; done
  python3 sequential_client.py "$port" "$2" "$3"
  kill -TERM "$pid"; wait "$pid" 2>/dev/null || true
  awk '/^summary:/ { print $2 }' "$OUT/callgrind.out"
}

printf "%-40s %18s %22s\n" binary "instr/request (ka)" "instr/connection (close)"
for bin in "${binaries[@]}"; do
  ka=$(( ($(count "$bin" "$N2" keep) - $(count "$bin" "$N1" keep)) / (N2 - N1) ))
  if [ -n "${RULES:-}" ]; then cl=-; else cl=$(( ($(count "$bin" "$N2" close) - $(count "$bin" "$N1" close)) / (N2 - N1) )); fi
  printf "%-40s %18s %22s\n" "$bin" "$ka" "$cl"
done
