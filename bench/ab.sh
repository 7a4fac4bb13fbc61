#!/usr/bin/env bash
# Compares two hasp binaries in alternating runs of the same scenarios, against the same nginx,
# pinned as run.sh pins them (nginx and wrk on cpu0, the proxy on PROXY_CPUS, default cpu1).
# Alternating short runs, with the order flipped each round, are what separates a change from
# this machine's drift (the same binary moves by a third within minutes).
# Usage: bench/ab.sh OLD NEW [rounds] [seconds] [scenario...]
#   NBTHREAD=2 PROXY_CPUS=0,1 bench/ab.sh ...   for two threads on both cores
set -euo pipefail
OLD=$(realpath "$1"); NEW=$(realpath "$2")
cd "$(dirname "$0")"
ROUNDS=${3:-3}
DURATION=${4:-5}
shift $(( $# < 4 ? $# : 4 ))
OUT=out; mkdir -p "$OUT/www"
source ./lib.sh

wanted=("$@")
declare -A runs
printf "%-16s %-5s %-4s %12s %10s %10s  %s\n" scenario round bin "req/s" "MB/s" "p99 ms" notes
for round in $(seq "$ROUNDS"); do
  for s in "${scenarios[@]}"; do
    IFS='|' read -r name kind args <<<"$s"
    if [ ${#wanted[@]} -gt 0 ] && [[ ! " ${wanted[*]} " =~ " $name " ]]; then continue; fi
    order=(old new); [ $((round % 2)) = 0 ] && order=(new old)
    for which in "${order[@]}"; do
      bin=$([ "$which" = old ] && echo "$OLD" || echo "$NEW")
      pid=$(start_proxy "$bin" "$which"); pids+=("$pid")
      case $kind in tcp) port=$PROXY_TCP_PORT ;; rules) port=$PROXY_RULES_PORT ;; ratelimit) port=$PROXY_RATELIMIT_PORT ;; cookie) port=$PROXY_COOKIE_PORT ;; *) port=$PROXY_HTTP_PORT ;; esac
      wait_port "$port"
      read -r rps mbps p99 notes < <(run_wrk "$port" $args)
      stop_proxy "$pid"
      value=$([ "$kind" = tcp ] && echo "$mbps" || echo "$rps")
      runs[$name.$which]="${runs[$name.$which]:-} $value"
      printf "%-16s %-5s %-4s %12s %10s %10s  %s\n" "$name" "$round" "$which" "$rps" "$mbps" "$p99" "$notes"
    done
  done
done
echo
for s in "${scenarios[@]}"; do
  IFS='|' read -r name kind args <<<"$s"
  [ -n "${runs[$name.old]:-}" ] || continue
  python3 - "$name" "$kind" "${runs[$name.old]}" "${runs[$name.new]}" <<'PY'
import statistics, sys
name, kind, old, new = sys.argv[1], sys.argv[2], [float(x) for x in sys.argv[3].split()], [float(x) for x in sys.argv[4].split()]
mo, mn = statistics.median(old), statistics.median(new)
unit = "MB/s" if kind == "tcp" else "req/s"
print(f"{name:<16} median {unit}: old {mo:,.0f}  new {mn:,.0f}  new/old {mn/mo if mo else 0:.2f}   (runs old {'/'.join(f'{x:,.0f}' for x in old)}; new {'/'.join(f'{x:,.0f}' for x in new)})")
PY
done
