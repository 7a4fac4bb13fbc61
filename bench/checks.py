#!/usr/bin/env python3
"""Health-check cost benchmark: 1,000 servers checked every 100 ms (10,000 checks a second)
on 2 threads, for hasp and for Debian's haproxy with the same configuration.

nginx (one worker) is the checked server. The check rate is the machine's TCP `ActiveOpens`
(connect() calls, from /proc/net/snmp) during the run: only the proxy opens connections then
(nginx's own `accepts` misses the checks HAProxy resets before nginx accepts them). Each proxy runs alone for `seconds` after a warm-up; the
script prints the proxy's CPU use (user + system, in % of one core) and the check rate
against the 10,000/s the schedule asks for.

Usage: bench/checks.py [seconds] [tcp|http ...]   (HASP=path, HAPROXY=path, INTER=ms to override)"""
import os, subprocess, sys, tempfile, time

here = os.path.dirname(os.path.abspath(__file__))
seconds = int(sys.argv[1]) if len(sys.argv) > 1 else 10
kinds = sys.argv[2:] or ["tcp", "http"]
hasp = os.environ.get("HASP", os.path.join(here, "../.build/release/hasp"))
haproxy = os.environ.get("HAPROXY", "haproxy")
SERVERS, INTER_MS, PORT = 1000, int(os.environ.get("INTER", "100")), 18021
out = os.path.join(here, "out"); os.makedirs(out, exist_ok=True)
nginx_conf = os.path.join(out, "nginx-checks.conf")
open(nginx_conf, "w").write(f"""worker_processes 1;
pid {out}/nginx-checks.pid;
error_log {out}/nginx-checks-error.log warn;
events {{ worker_connections 8192; }}
http {{
    access_log off;
    server {{
        listen 127.0.0.1:{PORT} backlog=8192;
        location = / {{ default_type text/plain; return 200 "ok\\n"; }}
    }}
}}
""")
subprocess.run(["nginx", "-c", nginx_conf], check=True)
clk = os.sysconf("SC_CLK_TCK")

def accepts():
    lines = [l.split() for l in open("/proc/net/snmp") if l.startswith("Tcp:")]
    return int(lines[1][lines[0].index("ActiveOpens")])

def cpu_ticks(pid):
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])

def rss_kib(pid):
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmRSS:"): return int(line.split()[1])
    return 0

def config(kind):
    servers = "\n".join(f"    server s{i} 127.0.0.1:{PORT} check inter {INTER_MS}ms" for i in range(SERVERS))
    check = "    option httpchk GET /\n" if kind == "http" else ""
    return f"""global
    nbthread 2
defaults
    mode http
    timeout connect 1s
    timeout client 10s
    timeout server 10s
    timeout check 1s
frontend fe
    bind 127.0.0.1:18023
    default_backend be
backend be
{check}{servers}
"""

def measure(name, argv, kind):
    work = tempfile.mkdtemp()
    cfg = os.path.join(work, "checks.cfg")
    open(cfg, "w").write(config(kind))
    proc = subprocess.Popen(argv + ["-f", cfg], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        time.sleep(3)  # warm-up: the first round of checks is spread over one interval
        a0, c0, t0 = accepts(), cpu_ticks(proc.pid), time.monotonic()
        time.sleep(seconds)
        a1, c1, t1 = accepts(), cpu_ticks(proc.pid), time.monotonic()
        rss = rss_kib(proc.pid)
    finally:
        proc.kill(); proc.wait()
    elapsed = t1 - t0
    cpu = (c1 - c0) / clk / elapsed * 100
    rate = (a1 - a0) / elapsed
    wanted = SERVERS * 1000 / INTER_MS
    print(f"| {name} | {kind} | {rate:,.0f}/s ({rate / wanted:.0%}) | {cpu:.1f}% | {cpu / rate * 1e4 if rate else 0:.1f} µs | {rss / 1024:.0f} MiB |", flush=True)

try:
    version = subprocess.run([haproxy, "-v"], capture_output=True, text=True).stdout.split()[2]
    print(f"{SERVERS} servers, check inter {INTER_MS}ms, nbthread 2, {seconds}s per run\n")
    print("| proxy | check | checks made | CPU (% of one core) | CPU per check | RSS |")
    print("|---|---|---|---|---|---|")
    for kind in kinds:
        measure(f"haproxy {version}", [haproxy, "-db"], kind)
        measure("hasp", [hasp, "-db"], kind)
finally:
    subprocess.run(["nginx", "-c", nginx_conf, "-s", "stop"])
