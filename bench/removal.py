#!/usr/bin/env python3
"""Server removal benchmark: how long from `disable server` to `wait srv-removable` answering
`Done.` while the server has idle connections on both event loops.

100 clients each send one request at the same time through hasp (nbthread 2) to an nginx
backend, then either stay connected (their server connections stay attached to them as idle
connections) or leave (their server connections go to the per-loop pools). One interactive CLI
session then sends `disable server be/s1; wait 5s srv-removable be/s1` and the time to `Done.`
is measured. Repeated; prints min/median/max.

Usage: bench/removal.py [rounds]   (HASP=path to override)"""
import os, socket, statistics, subprocess, sys, tempfile, threading, time

here = os.path.dirname(os.path.abspath(__file__))
rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 20
hasp = os.environ.get("HASP", os.path.join(here, "../.build/release/hasp"))
out = os.path.join(here, "out"); os.makedirs(os.path.join(out, "www"), exist_ok=True)
conf = open(os.path.join(here, "nginx.conf")).read().replace("__DIR__", out).replace("__NGINX_PORT__", "18011")
open(os.path.join(out, "nginx-removal.conf"), "w").write(conf.replace("nginx.pid", "nginx-removal.pid"))
subprocess.run(["nginx", "-c", os.path.join(out, "nginx-removal.conf")], check=True)
work = tempfile.mkdtemp()
sock = os.path.join(work, "admin.sock")
cfg = os.path.join(work, "hasp.cfg")
open(cfg, "w").write(f"""global
    nbthread 2
    stats socket {sock} level admin
defaults
    mode http
    timeout connect 2s
    timeout client 30s
    timeout server 30s
frontend fe
    bind 127.0.0.1:18012
    default_backend be
backend be
    server s1 127.0.0.1:18011
""")
proc = subprocess.Popen([hasp, "-db", "-f", cfg], stderr=subprocess.DEVNULL)

def wait_ready():
    end = time.time() + 10
    while time.time() < end:
        try:
            socket.create_connection(("127.0.0.1", 18012), 0.2).close()
            if os.path.exists(sock): return
        except OSError:
            pass
        time.sleep(0.02)
    raise SystemExit("hasp did not start")

def load(clients, keep):
    """Opens `clients` connections, sends one request on each at once, reads the answers."""
    conns = [socket.create_connection(("127.0.0.1", 18012)) for _ in range(clients)]
    barrier = threading.Barrier(clients)
    def one(c):
        barrier.wait()
        c.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        data = b""
        while b"\r\n\r\n" not in data: data += c.recv(65536)
    threads = [threading.Thread(target=one, args=(c,)) for c in conns]
    for t in threads: t.start()
    for t in threads: t.join()
    if not keep:
        for c in conns: c.close()
        return []
    return conns

def cli():
    c = socket.socket(socket.AF_UNIX); c.connect(sock); c.settimeout(10)
    c.sendall(b"prompt i\n"); c.recv(16)
    return c

def ask(c, line, until):
    c.sendall(line.encode() + b"\n")
    data = b""
    while not data.endswith(until.encode()): data += c.recv(65536)
    return data.decode()

def idle(c):
    for line in ask(c, "show servers conn be", "\n\n").splitlines():
        if line.startswith("be/s1 "): return line.split()
    return []

try:
    wait_ready()
    session = cli()
    for keep in (True, False):
        times = []
        for _ in range(rounds):
            held = load(100, keep)
            time.sleep(0.05)  # let the pools settle; not a synchronisation the result depends on
            before = idle(session)
            t0 = time.perf_counter()
            answer = ask(session, "disable server be/s1; wait 5s srv-removable be/s1", ".\n\n")
            times.append((time.perf_counter() - t0) * 1000)
            assert answer.endswith("Done.\n\n"), answer
            ask(session, "enable server be/s1", "\n")
            for c in held: c.close()
        kind = "held by 100 idle clients" if keep else "pooled after 100 clients left"
        print(f"connections {kind}: last 'show servers conn' row before disable: {' '.join(before)}")
        print(f"  disable -> Done.: min {min(times):.2f} ms, median {statistics.median(times):.2f} ms, max {max(times):.2f} ms over {rounds} rounds")
finally:
    proc.kill()
    subprocess.run(["nginx", "-c", os.path.join(out, "nginx-removal.conf"), "-s", "stop"])
