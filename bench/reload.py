#!/usr/bin/env python3
"""Reload benchmark: wrk keeps 50 connections busy while the master is told to reload every
0.5 s; prints wrk's errors and the reload latency (SIGUSR2 to "Loading success.").
Runs Debian's haproxy and hasp one after the other with the same file, both with -W.

Usage: bench/reload.py [seconds]   (HASP=path, HAPROXY=path to override)"""
import os, re, signal, statistics, subprocess, sys, time

here = os.path.dirname(os.path.abspath(__file__))
duration = int(sys.argv[1]) if len(sys.argv) > 1 else 30
hasp = os.environ.get("HASP", os.path.join(here, "../.build/release/hasp"))
haproxy = os.environ.get("HAPROXY", "/usr/sbin/haproxy")
out = os.path.join(here, "out"); os.makedirs(os.path.join(out, "www"), exist_ok=True)
env = dict(os.environ, NGINX_PORT="18001", PROXY_HTTP_PORT="18002", PROXY_TCP_PORT="18003")

conf = open(os.path.join(here, "nginx.conf")).read().replace("__DIR__", out).replace("__NGINX_PORT__", "18001")
open(os.path.join(out, "nginx.conf"), "w").write(conf)
subprocess.run(["nginx", "-c", os.path.join(out, "nginx.conf")], check=True)

def wait_port(port, timeout=10):
    import socket
    end = time.time() + timeout
    while time.time() < end:
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close(); return
        except OSError:
            time.sleep(0.02)
    raise SystemExit(f"port {port} not ready")

def run(binary, keepalive):
    log = os.path.join(out, f"reload-{os.path.basename(binary)}.log")
    err = open(log, "w")
    master = subprocess.Popen([binary, "-W", "-f", os.path.join(here, "proxy.cfg")], stderr=err, env=env)
    wait_port(18002)
    def successes():
        return open(log).read().count("Loading success.")
    end = time.time() + 10
    while successes() < 1 and time.time() < end: time.sleep(0.01)
    args = ["wrk", "-t1", "-c50", f"-d{duration}s", "http://127.0.0.1:18002/small"]
    if not keepalive: args[1:1] = ["-H", "Connection: close"]
    wrk = subprocess.Popen(args, stdout=subprocess.PIPE, text=True)
    latencies, failed = [], 0
    time.sleep(0.5)
    while wrk.poll() is None:
        before = successes()
        t0 = time.time()
        master.send_signal(signal.SIGUSR2)
        while successes() == before and time.time() - t0 < 5: time.sleep(0.002)
        if successes() == before: failed += 1
        else: latencies.append((time.time() - t0) * 1000)
        time.sleep(max(0, 0.5 - (time.time() - t0)))
    text = wrk.stdout.read()
    master.send_signal(signal.SIGTERM)
    try: master.wait(10)
    except subprocess.TimeoutExpired: master.kill()
    reqs = re.search(r"(\d+) requests in", text)
    sock = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text)
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
    errors = (sum(map(int, sock.groups())) if sock else 0) + (int(non2xx.group(1)) if non2xx else 0)
    detail = sock.group(0) if sock else "no socket errors"
    lat = f"median {statistics.median(latencies):.0f} ms, max {max(latencies):.0f} ms" if latencies else "n/a"
    print(f"{os.path.basename(binary):8} {'keep-alive' if keepalive else 'close':10} requests {reqs.group(1) if reqs else '?':>8}  "
          f"errors {errors:>5} ({detail}{', non-2xx ' + non2xx.group(1) if non2xx else ''})  reloads {len(latencies)} (+{failed} unconfirmed)  latency {lat}")

try:
    for keepalive in (True, False):
        for binary in (haproxy, hasp):
            run(binary, keepalive)
finally:
    subprocess.run(["sh", "-c", f"kill $(cat {out}/nginx.pid)"])
