#!/usr/bin/env bash
# Memory per stick table entry: fills a `type ip ... store http_req_rate(10s)` table with
# N entries through the runtime API (`set table`), under Debian's haproxy and under hasp,
# and prints each process's resident memory growth per entry.
# Usage: bench/table-memory.sh [entries]   (HASP=path/to/hasp to override the binary)
set -euo pipefail
cd "$(dirname "$0")"
N=${1:-1000000}
HASP=${HASP:-../.build/release/hasp}
HAPROXY=${HAPROXY:-/usr/sbin/haproxy}
OUT=$PWD/out; mkdir -p "$OUT"
python3 - "$N" > "$OUT/set-table.txt" <<'PY'
import sys
n = int(sys.argv[1])
print("prompt")
for i in range(n):
    print(f"set table t key 10.{(i >> 16) & 255}.{(i >> 8) & 255}.{i & 255} data.http_req_rate 1")
print("quit")
PY
for target in haproxy hasp; do
  sock=$OUT/table-$target.sock; rm -f "$sock"
  cat > "$OUT/table.cfg" <<CFG
global
    stats socket $sock level admin
backend t
    stick-table type ip size $N expire 1h store http_req_rate(10s)
CFG
  bin=$HAPROXY; [ $target = hasp ] && bin=$HASP
  "$bin" -f "$OUT/table.cfg" > "$OUT/table-$target.log" 2>&1 & pid=$!
  for _ in $(seq 100); do [ -S "$sock" ] && break; sleep 0.1; done
  before=$(awk '/VmRSS/ {print $2}' /proc/$pid/status)
  socat -t 600 - "UNIX-CONNECT:$sock" < "$OUT/set-table.txt" > /dev/null
  used=$(echo "show table" | socat - "UNIX-CONNECT:$sock" | sed -n 's/.*used:\([0-9]*\).*/\1/p')
  after=$(awk '/VmRSS/ {print $2}' /proc/$pid/status)
  kill $pid; wait $pid 2>/dev/null || true
  python3 -c "print(f'$target: {int(\"$used\")} entries, RSS {$before} kB -> {$after} kB: {($after-$before)*1024/max(1,int(\"$used\")):.0f} bytes per entry')"
done
