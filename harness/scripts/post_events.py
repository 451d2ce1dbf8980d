#!/usr/bin/env python3
"""Posts an NDJSON file to `vigil serve` (POST /v1/events) in bodies of N lines from C client threads,
retrying 503s, and prints events/s.  Usage: post_events.py HOST:PORT events.ndjson LINES_PER_BODY CLIENTS"""
import socket, sys, time, threading
host, port = sys.argv[1].split(':'); port = int(port)
path = sys.argv[2]; lines_per = int(sys.argv[3]); clients = int(sys.argv[4])
lines = open(path, 'rb').read().splitlines(keepends=True)
bodies = [b''.join(lines[i:i+lines_per]) for i in range(0, len(lines), lines_per)]
def post(body):
    while True:
        s = socket.create_connection((host, port))
        s.sendall(b'POST /v1/events HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\nConnection: close\r\n\r\n' % len(body) + body)
        data = b''
        while True:
            d = s.recv(65536)
            if not d: break
            data += d
        s.close()
        if data.startswith(b'HTTP/1.1 200'): return
        if b' 503 ' in data[:20]: time.sleep(0.01); continue
        raise SystemExit(data[:300])
t0 = time.time()
idx = [0]; lock = threading.Lock()
def worker():
    while True:
        with lock:
            i = idx[0]; idx[0] += 1
        if i >= len(bodies): return
        post(bodies[i])
# keep order per body index roughly; with >1 client lateness may apply
ts = [threading.Thread(target=worker) for _ in range(clients)]
[t.start() for t in ts]; [t.join() for t in ts]
dt = time.time() - t0
print(f"{len(lines)} events in {dt:.2f}s = {len(lines)/dt:,.0f} events/s ({lines_per} lines/body, {clients} clients)")
