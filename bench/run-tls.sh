#!/usr/bin/env bash
# TLS termination: Debian's haproxy and hasp on the same configuration (tls.cfg, nbthread 1,
# proxy pinned to cpu1, nginx and the clients on cpu0), one after the other in the same run.
#   hs-ec / hs-rsa  a new TLS connection per request (full handshake, no resumption:
#                   `openssl s_time -new`, CLIENTS processes), ECDSA P-256 and RSA 2048
#                   certificates. The clients share cpu0, so the connection rate is bounded by
#                   them as much as by the proxy: the proxy's own CPU time per connection
#                   (from /proc) is the figure to compare.
#   ka-tls          keep-alive HTTPS, wrk -c50.
# Usage: bench/run-tls.sh [seconds-per-scenario]   (HASP=..., CLIENTS=4, ONLY='ka-tls|hs-ec')
set -euo pipefail
cd "$(dirname "$0")"
DURATION=${1:-10}
HASP=${HASP:-../.build/release/hasp}
HAPROXY=${HAPROXY:-/usr/sbin/haproxy}
CLIENTS=${CLIENTS:-4}
OUT=out; mkdir -p "$OUT/www"
export PROXY_EC_PORT=${PROXY_EC_PORT:-18011} PROXY_RSA_PORT=${PROXY_RSA_PORT:-18012}
source ./lib.sh

[ -s "$OUT/ec.pem" ] || { openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$OUT/ec.key" \
  -out "$OUT/ec.crt" -days 3650 -subj /CN=bench.test 2>/dev/null; cat "$OUT/ec.crt" "$OUT/ec.key" > "$OUT/ec.pem"; }
[ -s "$OUT/rsa.pem" ] || { openssl req -x509 -newkey rsa:2048 -nodes -keyout "$OUT/rsa.key" -out "$OUT/rsa.crt" -days 3650 \
  -subj /CN=bench.test 2>/dev/null; cat "$OUT/rsa.crt" "$OUT/rsa.key" > "$OUT/rsa.pem"; }

cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
tick=$(getconf CLK_TCK)

start_tls_proxy() { # binary name -> pid
  taskset -c "$PROXY_CPUS" "$1" -db -f tls.cfg > "$OUT/proxy-$2.log" 2>&1 &
  echo $!
}

handshakes() { # port -> "connections conn/s"
  local port=$1 total=0
  for i in $(seq "$CLIENTS"); do
    taskset -c 0 openssl s_time -connect "127.0.0.1:$port" -new -www /small -time "$DURATION" > "$OUT/s_time-$i.txt" 2>&1 &
  done
  wait
  for i in $(seq "$CLIENTS"); do
    n=$(grep -Eo '^[0-9]+ connections in [0-9.]+ real' "$OUT/s_time-$i.txt" | head -1 | cut -d' ' -f1)
    total=$((total + ${n:-0}))
  done
  echo "$total $(python3 -c "print(f'{$total/$DURATION:.0f}')")"
}

printf "%-8s %-8s %12s %16s  %s\n" scenario target "conn|req/s" "proxy us/conn" notes
declare -A result
for scenario in hs-ec hs-rsa ka-tls; do
  [[ -n "${ONLY:-}" && ! "$scenario" =~ ^(${ONLY})$ ]] && continue
  for target in haproxy hasp; do
    case $target in haproxy) bin=$HAPROXY ;; hasp) bin=$HASP ;; esac
    pid=$(start_tls_proxy "$bin" "$target")
    port=$PROXY_EC_PORT; [ "$scenario" = hs-rsa ] && port=$PROXY_RSA_PORT
    wait_port "$port"
    before=$(cpu_ticks "$pid")
    if [ "$scenario" = ka-tls ]; then
      taskset -c 0 wrk -t1 -c50 -d"${DURATION}s" "https://127.0.0.1:$port/small" > "$OUT/wrk.txt" 2>&1 || true
      rate=$(grep -Eo 'Requests/sec: +[0-9.]+' "$OUT/wrk.txt" | awk '{print int($2)}')
      count=$(grep -Eo '^ +[0-9]+ requests in' "$OUT/wrk.txt" | awk '{print $1}')
      notes=$(grep -Eo 'Non-2xx.*|Socket errors.*' "$OUT/wrk.txt" | tr '\n' ' ' || true)
    else
      read -r count rate < <(handshakes "$port")
      notes="$CLIENTS clients"
    fi
    after=$(cpu_ticks "$pid")
    us=$(python3 -c "print(f'{($after-$before)*1e6/$tick/max(1,${count:-0}):.0f}')")
    result[$scenario.$target.rate]=${rate:-0}; result[$scenario.$target.us]=$us
    printf "%-8s %-8s %12s %16s  %s\n" "$scenario" "$target" "${rate:-0}" "$us" "$notes"
    stop_proxy "$pid"
  done
  python3 -c "
r=float('${result[$scenario.hasp.rate]}')/max(1,float('${result[$scenario.haproxy.rate]}'))
c=float('${result[$scenario.haproxy.us]}')/max(1,float('${result[$scenario.hasp.us]}'))
print(f\"{'$scenario':<8} ratio hasp/haproxy: rate {r:.2f}, CPU efficiency (haproxy us / hasp us) {c:.2f}\")"
done
