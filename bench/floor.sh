#!/usr/bin/env bash
# Where SwiftNIO's channel layer puts the floor (issue 16): Debian's haproxy, hasp and
# nio-relay (bench/nio-relay: accept, connect, relay bytes, close; nothing else) under the same
# wrk load, one after the other in the same run, through the HTTP frontend and the TCP frontend
# of proxy.cfg. nio-relay relays on both ports without reading HTTP, so it is the least any proxy
# built on NIO channels can cost; if it is slower than haproxy, so is every such proxy.
# Prints req/s, the proxy's CPU time per request (utime+stime from /proc) and the ratios.
# Usage: bench/floor.sh [seconds-per-run]   (RELAY=, HASP=, HAPROXY= override the binaries;
# ONLY='close-50' to run some scenarios)
set -euo pipefail
cd "$(dirname "$0")"
DURATION=${1:-10}
HASP=${HASP:-../.build/release/hasp}
HAPROXY=${HAPROXY:-/usr/sbin/haproxy}
RELAY=${RELAY:-../.build/release/nio-relay}
OUT=out; mkdir -p "$OUT/www"
source ./lib.sh

cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }
tick_us=$((1000000 / $(getconf CLK_TCK)))

printf "%-16s %-5s %-9s %10s %10s %8s\n" scenario port target "req/s" "CPU µs/req" "p99 ms"
declare -A rps cpu
for s in "keepalive-50|-t1 -c50 /small" "close-50|-t1 -c50 CLOSE /small" "keepalive-1000|-t2 -c1000 /small"; do
  IFS='|' read -r name args <<<"$s"
  if [ -n "${ONLY:-}" ] && ! [[ "$name" =~ ^(${ONLY})$ ]]; then continue; fi
  for kind in http tcp; do
    [ $kind = http ] && port=$PROXY_HTTP_PORT || port=$PROXY_TCP_PORT
    for target in haproxy hasp relay; do
      case $target in haproxy) bin=$HAPROXY ;; hasp) bin=$HASP ;; relay) bin=$RELAY ;; esac
      pid=$(start_proxy "$bin" "$target"); pids+=("$pid")
      wait_port "$port"
      # haproxy and hasp fork nothing with -db; the busy process is the one started.
      before=$(cpu_ticks "$pid")
      read -r r _ p99 notes < <(run_wrk "$port" $args)
      used=$(( ($(cpu_ticks "$pid") - before) * tick_us ))
      stop_proxy "$pid"
      total=$(python3 -c "print(int(float('$r') * $DURATION))")
      per=$(python3 -c "print(f'{$used / $total:.1f}' if $total else '-')")
      rps[$name.$kind.$target]=$r; cpu[$name.$kind.$target]=$per
      printf "%-16s %-5s %-9s %10s %10s %8s  %s\n" "$name" "$kind" "$target" "$r" "$per" "$p99" "$notes"
    done
  done
  python3 -c "
r={k: float(v) for k, v in [$(for k in "${!rps[@]}"; do [[ $k == $name.* ]] && printf "('%s','%s')," "${k#$name.}" "${rps[$k]}"; done)]}
print(f\"{'$name':<16} hasp/haproxy http {r['http.hasp']/r['http.haproxy']:.2f}  relay/haproxy tcp {r['tcp.relay']/r['tcp.haproxy']:.2f}  relay/haproxy http {r['http.relay']/r['http.haproxy']:.2f}  hasp tcp/relay {r['tcp.hasp']/r['tcp.relay']:.2f}\")"
done
