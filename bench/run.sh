#!/usr/bin/env bash
# Runs nginx directly, through Debian's haproxy and through hasp (same configuration,
# nbthread 1) under wrk, one after the other in the same run, and prints the ratios.
# nginx and wrk are pinned to cpu0, the proxy to cpu1 (taskset), so that the proxies are
# measured on a core of their own.
# Usage: bench/run.sh [seconds-per-scenario]   (HASP=path/to/hasp to override the binary;
# NBTHREAD=2 PROXY_CPUS=0,1 to run both proxies with two threads on both cores;
# ONLY='keepalive-50|rules-50' to run some scenarios). Also prints the proxy's CPU time per
# request (utime+stime from /proc over the wrk run): a proxy that is not CPU-bound (nginx and
# wrk on cpu0 can be the limit) shows its cost there rather than in req/s.
set -euo pipefail
cd "$(dirname "$0")"
DURATION=${1:-10}
HASP=${HASP:-../.build/release/hasp}
HAPROXY=${HAPROXY:-/usr/sbin/haproxy}
OUT=out; mkdir -p "$OUT/www"
source ./lib.sh

cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }
user_ticks() { awk '{ print $14 }' "/proc/$1/stat"; }
minor_faults() { awk '{ print $10 }' "/proc/$1/stat"; }
tick_us=$((1000000 / $(getconf CLK_TCK)))
printf "%-16s %-8s %12s %10s %10s %10s %10s %10s  %s\n" scenario target "req/s" "MB/s" "p99 ms" "CPU µs/req" "user µs" "faults/req" notes
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
    [ -n "$pid" ] && before=$(cpu_ticks "$pid") && user_before=$(user_ticks "$pid") && faults_before=$(minor_faults "$pid")
    read -r rps mbps p99 notes < <(run_wrk "$port" $args)
    per=-; user=-; faults=-
    if [ -n "$pid" ]; then
      used=$(( ($(cpu_ticks "$pid") - before) * tick_us ))
      user_used=$(( ($(user_ticks "$pid") - user_before) * tick_us ))
      per=$(python3 -c "n=float('$rps')*$DURATION; print(f'{$used/n:.1f}' if n else '-')")
      user=$(python3 -c "n=float('$rps')*$DURATION; print(f'{$user_used/n:.1f}' if n else '-')")
      faults=$(python3 -c "n=float('$rps')*$DURATION; print(f'{($(minor_faults "$pid") - $faults_before)/n:.3f}' if n else '-')")
    fi
    if [ "$rps" = 0 ]; then echo "wrk failed against $target:"; cat "$OUT/wrk.txt"; fi
    result[$name.$target.rps]=$rps; result[$name.$target.mbps]=$mbps; result[$name.$target.cpu]=$per; result[$name.$target.user]=$user
    printf "%-16s %-8s %12s %10s %10s %10s %10s %10s  %s\n" "$name" "$target" "$rps" "$mbps" "$p99" "$per" "$user" "$faults" "$notes"
    if [ -n "$pid" ]; then stop_proxy "$pid"; fi
  done
  python3 -c "
h=float('${result[$name.haproxy.rps]}'); s=float('${result[$name.hasp.rps]}')
hm=float('${result[$name.haproxy.mbps]}'); sm=float('${result[$name.hasp.mbps]}')
r=(sm/hm if hm else 0) if '$kind'=='tcp' else (s/h if h else 0)
print(f\"{'$name':<16} ratio hasp/haproxy ({'MB/s' if '$kind'=='tcp' else 'req/s'}): {r:.2f}\")"
done
# What the rules cost each proxy, when both scenarios ran: the share of its plain keep-alive
# throughput it loses, and the CPU time the rules add per request (issue 13's goal).
if [ -n "${result[keepalive-50.hasp.rps]:-}" ] && [ -n "${result[rules-50.hasp.rps]:-}" ]; then
  python3 -c "
for t in ('haproxy', 'hasp'):
    p, r = float('${result[keepalive-50.haproxy.rps]}' if t == 'haproxy' else '${result[keepalive-50.hasp.rps]}'), float('${result[rules-50.haproxy.rps]}' if t == 'haproxy' else '${result[rules-50.hasp.rps]}')
    pc, rc = ('${result[keepalive-50.haproxy.cpu]}', '${result[rules-50.haproxy.cpu]}') if t == 'haproxy' else ('${result[keepalive-50.hasp.cpu]}', '${result[rules-50.hasp.cpu]}')
    pu, ru = ('${result[keepalive-50.haproxy.user]}', '${result[rules-50.haproxy.user]}') if t == 'haproxy' else ('${result[keepalive-50.hasp.user]}', '${result[rules-50.hasp.user]}')
    cpu = f'CPU per request x{float(rc)/float(pc):.2f} ({pc} -> {rc} µs), user x{float(ru)/float(pu):.2f} ({pu} -> {ru} µs)' if '-' not in (pc, rc, pu, ru) else ''
    print(f'rules cost {t:<8} throughput {(r/p - 1)*100:+.0f} %  {cpu}')"
fi
