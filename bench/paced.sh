#!/usr/bin/env bash
# The proxies' CPU time per request under the same offered load: wrk paces every connection
# (a fixed delay before each request, bench/paced.lua), so nginx and wrk on cpu0 do the same
# work whichever proxy sits on cpu1, and the proxy's own CPU time (utime+stime from /proc) per
# request compares without the saturated runs' noise, where the proxy's speed changes how busy
# cpu0 is and so what each wake-up costs. Plain keep-alive and rules frontends, Debian's
# haproxy and hasp, ROUNDS rounds in alternating order; prints each run, then the means and what
# the rules add to each proxy's CPU time per request.
# Usage: bench/paced.sh [seconds-per-run] [rounds]   (DELAY_MS=2 and CONNECTIONS=40 set the
# load: about 40 / (2 ms + latency), some 18,000 requests per second; HASP= and HAPROXY= as in
# run.sh). About (4 x seconds + 4) x rounds seconds.
set -euo pipefail
cd "$(dirname "$0")"
DURATION=${1:-10}
ROUNDS=${2:-6}
HASP=${HASP:-../.build/release/hasp}
HAPROXY=${HAPROXY:-/usr/sbin/haproxy}
CONNECTIONS=${CONNECTIONS:-40}
export DELAY_MS=${DELAY_MS:-2}
OUT=out; mkdir -p "$OUT/www"
source ./lib.sh

cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }
user_ticks() { awk '{ print $14 }' "/proc/$1/stat"; }
tick_us=$((1000000 / $(getconf CLK_TCK)))

run() { # target-name binary port -> "name kind rps cpu-µs/req user-µs/req"
  local pid; pid=$(start_proxy "$2" "paced-$1"); pids+=("$pid")
  wait_port "$3"
  kill -0 "$pid" 2>/dev/null || { echo "$1 failed to start:" >&2; cat "$OUT/proxy-paced-$1.log" >&2; exit 1; }
  taskset -c 0 wrk -t1 -c"$CONNECTIONS" -d1s -s paced.lua "http://127.0.0.1:$3/small" > /dev/null
  local before user_before; before=$(cpu_ticks "$pid"); user_before=$(user_ticks "$pid")
  taskset -c 0 wrk -t1 -c"$CONNECTIONS" -d"${DURATION}s" -s paced.lua "http://127.0.0.1:$3/small" > "$OUT/wrk-paced.txt" 2>&1
  local used=$(( ($(cpu_ticks "$pid") - before) * tick_us )) user_used=$(( ($(user_ticks "$pid") - user_before) * tick_us ))
  stop_proxy "$pid"
  python3 - "$OUT/wrk-paced.txt" "$used" "$user_used" <<'PY'
import re, sys
text = open(sys.argv[1]).read()
requests = int(re.search(r"(\d+) requests in", text).group(1))
errors = re.search(r"Non-2xx or 3xx responses: (\d+)|Socket errors", text)
if errors: sys.exit("errors in the run:\n" + text)
seconds = float(re.search(r"requests in ([\d.]+)s", text).group(1))
print(f"{requests / seconds:.0f} {int(sys.argv[2]) / requests:.2f} {int(sys.argv[3]) / requests:.2f}")
PY
}

printf "%-6s %-8s %-6s %10s %12s %12s\n" round target kind "req/s" "CPU µs/req" "user µs/req"
: > "$OUT/paced.txt"
for round in $(seq "$ROUNDS"); do
  # Alternate the order, so that a drift over the run weighs on both proxies alike.
  order=("haproxy:$HAPROXY" "hasp:$HASP"); [ $((round % 2)) = 0 ] && order=("hasp:$HASP" "haproxy:$HAPROXY")
  for entry in "${order[@]}"; do
    for kind in plain rules; do
      port=$PROXY_HTTP_PORT; [ $kind = rules ] && port=$PROXY_RULES_PORT
      read -r rps cpu user < <(run "${entry%%:*}" "${entry#*:}" "$port")
      printf "%-6s %-8s %-6s %10s %12s %12s\n" "$round" "${entry%%:*}" "$kind" "$rps" "$cpu" "$user"
      echo "${entry%%:*} $kind $rps $cpu $user" >> "$OUT/paced.txt"
    done
  done
done
python3 - "$OUT/paced.txt" <<'PY'
import statistics as st, sys
rows = [line.split() for line in open(sys.argv[1])]
def values(target, kind, column): return [float(r[column]) for r in rows if r[0] == target and r[1] == kind]
print()
for target in ("haproxy", "hasp"):
    pc, rc = values(target, "plain", 3), values(target, "rules", 3)
    pu, ru = values(target, "plain", 4), values(target, "rules", 4)
    ratios = [r / p for p, r in zip(pc, rc)]
    sd = f" (sd {st.stdev(ratios):.3f} over {len(ratios)} rounds)" if len(ratios) > 1 else ""
    print(f"{target:<8} CPU µs/req plain {st.mean(pc):.2f}, rules {st.mean(rc):.2f}: x{st.mean(ratios):.3f}{sd}; "
          f"user {st.mean(pu):.2f} -> {st.mean(ru):.2f}; a CPU-bound proxy keeps {100 * st.mean(pc) / st.mean(rc):.1f} % of its plain throughput")
PY
