#!/usr/bin/env bash
# Runs nginx directly, through Debian's haproxy and through hasp (same configuration,
# nbthread 1) under wrk, one after the other in the same run, and prints the ratios.
# nginx and wrk are pinned to cpu0, the proxy to cpu1 (taskset), so that the proxies are
# measured on a core of their own.
# Usage: bench/run.sh [seconds-per-scenario]   (HASP=path/to/hasp to override the binary;
# NBTHREAD=2 PROXY_CPUS=0,1 to run both proxies with two threads on both cores;
# ONLY='keepalive-50|rules-50' to run some scenarios)
set -euo pipefail
cd "$(dirname "$0")"
DURATION=${1:-10}
HASP=${HASP:-../.build/release/hasp}
HAPROXY=${HAPROXY:-/usr/sbin/haproxy}
OUT=out; mkdir -p "$OUT/www"
source ./lib.sh

printf "%-16s %-8s %12s %10s %10s  %s\n" scenario target "req/s" "MB/s" "p99 ms" notes
declare -A result
for s in "${scenarios[@]}"; do
  IFS='|' read -r name kind args <<<"$s"
  for target in nginx haproxy hasp; do
    pid=""
    case $target in
      nginx) [ "$kind" = tcp ] && port=$NGINX_PORT || port=$NGINX_PORT ;;
      haproxy) pid=$(start_proxy "$HAPROXY" haproxy) ;;
      hasp) pid=$(start_proxy "$HASP" hasp) ;;
    esac
    if [ -n "$pid" ]; then
      pids+=("$pid")
      case $kind in tcp) port=$PROXY_TCP_PORT ;; rules) port=$PROXY_RULES_PORT ;; ratelimit) port=$PROXY_RATELIMIT_PORT ;; cookie) port=$PROXY_COOKIE_PORT ;; *) port=$PROXY_HTTP_PORT ;; esac
      wait_port "$port"
      kill -0 "$pid" 2>/dev/null || { echo "$target failed to start:"; cat "$OUT/proxy-$target.log"; exit 1; }
    fi
    read -r rps mbps p99 notes < <(run_wrk "$port" $args)
    if [ "$rps" = 0 ]; then echo "wrk failed against $target:"; cat "$OUT/wrk.txt"; fi
    result[$name.$target.rps]=$rps; result[$name.$target.mbps]=$mbps
    printf "%-16s %-8s %12s %10s %10s  %s\n" "$name" "$target" "$rps" "$mbps" "$p99" "$notes"
    if [ -n "$pid" ]; then stop_proxy "$pid"; fi
  done
  python3 -c "
h=float('${result[$name.haproxy.rps]}'); s=float('${result[$name.hasp.rps]}')
hm=float('${result[$name.haproxy.mbps]}'); sm=float('${result[$name.hasp.mbps]}')
r=(sm/hm if hm else 0) if '$kind'=='tcp' else (s/h if h else 0)
print(f\"{'$name':<16} ratio hasp/haproxy ({'MB/s' if '$kind'=='tcp' else 'req/s'}): {r:.2f}\")"
done
