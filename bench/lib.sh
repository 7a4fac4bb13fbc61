# Shared by run.sh and ab.sh: the nginx backend, the scenarios, wrk and proxy control.
# Expects DURATION and OUT set, and the current directory to be bench/.
DIR=$(cd "$OUT" && pwd)
export NGINX_PORT=${NGINX_PORT:-18001} PROXY_HTTP_PORT=${PROXY_HTTP_PORT:-18002} PROXY_TCP_PORT=${PROXY_TCP_PORT:-18003}
export PROXY_RULES_PORT=${PROXY_RULES_PORT:-18004} PROXY_RATELIMIT_PORT=${PROXY_RATELIMIT_PORT:-18005}
export PROXY_COOKIE_PORT=${PROXY_COOKIE_PORT:-18006} BENCH_DIR=$DIR
# The proxy's CPUs (taskset list) and threads; nginx and wrk stay on cpu0.
PROXY_CPUS=${PROXY_CPUS:-1}
NBTHREAD=${NBTHREAD:-1}

head -c 16384 /dev/urandom > "$OUT/www/16k"
[ -s "$OUT/www/64m" ] || head -c $((64 << 20)) /dev/urandom > "$OUT/www/64m"
# The rules scenario's map: 10,000 host names.
[ -s "$OUT/hosts.map" ] || for i in $(seq 0 9999); do echo "host$i.example.com tier$((i % 7))"; done > "$OUT/hosts.map"
sed -e "s#__DIR__#$DIR#g" -e "s#__NGINX_PORT__#$NGINX_PORT#g" nginx.conf > "$OUT/nginx.conf"

pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; [ -f "$OUT/nginx.pid" ] && kill "$(cat "$OUT/nginx.pid")" 2>/dev/null || true; }
trap cleanup EXIT

for p in $NGINX_PORT $PROXY_HTTP_PORT $PROXY_TCP_PORT $PROXY_RULES_PORT $PROXY_RATELIMIT_PORT $PROXY_COOKIE_PORT; do
  if (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then echo "port $p is already in use; stop what listens there first" >&2; exit 1; fi
done
taskset -c 0 nginx -c "$DIR/nginx.conf"
wait_port() { for _ in $(seq 100); do (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0; sleep 0.05; done; echo "port $1 not ready" >&2; return 1; }
wait_port $NGINX_PORT

# scenario name | port kind | wrk arguments
scenarios=(
  "keepalive-50|http|-t1 -c50 /small"
  "keepalive-1000|http|-t2 -c1000 /small"
  "close-50|http|-t1 -c50 CLOSE /small"
  "16k-50|http|-t1 -c50 /16k"
  "tcp-bulk-4|tcp|-t1 -c4 /64m"
  "rules-50|rules|-t1 -c50 /small"
  "ratelimit-50|ratelimit|-t1 -c50 /small"
  "cookie-50|cookie|-t1 -c50 /small"
)
# ONLY='keepalive-50|rules-50' runs just the scenarios whose names match.
if [ -n "${ONLY:-}" ]; then
  kept=(); for s in "${scenarios[@]}"; do [[ "${s%%|*}" =~ ^(${ONLY})$ ]] && kept+=("$s"); done; scenarios=("${kept[@]}")
fi

run_wrk() { # port args... ; prints "rps mbps p99"
  local port=$1; shift
  local path=${*: -1}; local args=()
  for a in "${@:1:$#-1}"; do
    if [ "$a" = CLOSE ]; then args+=(-H "Connection: close"); else args+=("$a"); fi
  done
  taskset -c 0 wrk "${args[@]}" -d"${DURATION}s" --latency "http://127.0.0.1:$port$path" > "$OUT/wrk.txt" 2>&1 || true
  python3 - "$OUT/wrk.txt" <<'PY'
import re,sys
t=open(sys.argv[1]).read()
rps=float(re.search(r"Requests/sec:\s+([\d.]+)",t).group(1)) if "Requests/sec" in t else 0
m=re.search(r"Transfer/sec:\s+([\d.]+)(\w+)",t)
mult={"B":1/2**20,"KB":1/1024,"MB":1,"GB":1024}
mbps=float(m.group(1))*mult.get(m.group(2),1) if m else 0
p=re.search(r"99%\s+([\d.]+)(us|ms|s)",t)
p99=float(p.group(1))*{"us":0.001,"ms":1,"s":1000}[p.group(2)] if p else 0
err=re.search(r"Non-2xx or 3xx responses: (\d+)",t); sock=re.search(r"Socket errors: (.*)",t)
print(f"{rps:.0f} {mbps:.1f} {p99:.2f} {'errors:'+(err.group(1) if err else '0')+('/'+sock.group(1).replace(' ','') if sock else '')}")
PY
}

# The proxies are not children of this shell (command substitution), so poll for their exit
# and for the ports to be released before the next one binds them.
stop_proxy() {
  kill "$1" 2>/dev/null || true
  for _ in $(seq 200); do kill -0 "$1" 2>/dev/null || break; sleep 0.05; done
  kill -9 "$1" 2>/dev/null || true
  for _ in $(seq 200); do
    (exec 3<>"/dev/tcp/127.0.0.1/$PROXY_HTTP_PORT") 2>/dev/null || (exec 3<>"/dev/tcp/127.0.0.1/$PROXY_TCP_PORT") 2>/dev/null || (exec 3<>"/dev/tcp/127.0.0.1/$PROXY_RULES_PORT") 2>/dev/null || (exec 3<>"/dev/tcp/127.0.0.1/${PROXY_EC_PORT:-1}") 2>/dev/null || (exec 3<>"/dev/tcp/127.0.0.1/${PROXY_RSA_PORT:-1}") 2>/dev/null || return 0
    sleep 0.05
  done
}

start_proxy() { # binary name -> pid
  sed "s/nbthread 1/nbthread $NBTHREAD/" proxy.cfg > "$OUT/proxy.cfg"
  taskset -c "$PROXY_CPUS" "$1" -db -f "$OUT/proxy.cfg" > "$OUT/proxy-$2.log" 2>&1 &
  echo $!
}

