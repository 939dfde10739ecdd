"""Many simultaneous connections (200, with -t 2), each left open while
the others connect: every one is either served completely (handshake,
a write of its own block, and the read back of it) or cleanly refused
(closed before or during the handshake, never a wrong answer).  A
well-behaved libnbd client is served while they are all open, and the
server is fine after they all go.  Then 200 connections that only
connect and wait (never send anything): again other clients are
served, and closing them all leaves the server working.
"""

import os
import resource
import socket
import struct
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import nbdtest  # noqa: E402
import nbdtest_raw as raw  # noqa: E402

N = 200
BLOCK = 4096
soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
if soft < 3 * N:
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 4 * N), hard))
    except ValueError:
        nbdtest.skip("cannot open %d files (ulimit -n %d)" % (3 * N, soft))

t = nbdtest.Test()
uri = t.start("mem", "-t", "2", "memory", "%d" % (N * BLOCK + (1 << 20)))
sock = t.sock
pattern = os.urandom(1 << 20)
base = N * BLOCK
h = t.connect(uri)
h.pwrite(pattern, base)
h.shutdown()

results = [None] * N
barrier = threading.Barrier(N + 1, timeout=60)


def client(i):
    c = None
    try:
        c = raw.Client(sock, timeout=30)
        c.structured()
        c.go()
        data = bytes([i % 256]) * BLOCK
        c.send(raw.CMD_WRITE, i * BLOCK, BLOCK, data=data)
        r = c.reply()
        assert r.error == 0, r
        # Hold the connection open until all are up.
        barrier.wait()
        c.send(raw.CMD_READ, i * BLOCK, BLOCK)
        r = c.reply()
        assert r.error == 0 and r.data == data, \
            "client %d read back the wrong data" % i
        results[i] = "served"
    except (EOFError, ConnectionResetError, BrokenPipeError,
            ConnectionRefusedError) as e:
        results[i] = "refused: %r" % e
        try:
            barrier.wait()
        except threading.BrokenBarrierError:
            pass
    except Exception as e:
        results[i] = e
        barrier.abort()
    finally:
        if c:
            c.close()


threads = [threading.Thread(target=client, args=(i,)) for i in range(N)]
start = time.time()
for th in threads:
    th.start()
# All connected (or refused): a well-behaved client is served now.
barrier.wait()
h = t.connect(uri)
assert h.pread(len(pattern), base) == pattern, "pattern changed"
h.shutdown()
for th in threads:
    th.join(60)
took = time.time() - start
served = sum(1 for r in results if r == "served")
refused = [r for r in results if isinstance(r, str) and
           r.startswith("refused")]
bad = [(i, r) for i, r in enumerate(results)
       if not (isinstance(r, str))]
print("%d connections: %d served, %d refused, %.1fs" % (
    N, served, len(refused), took))
assert not bad, "clients failed: %r" % bad[:5]
assert served + len(refused) == N
assert served > 0, "no connection served"

# Every served client's block holds its byte.
h = t.connect(uri)
for i in range(N):
    if results[i] == "served":
        assert h.pread(BLOCK, i * BLOCK) == bytes([i % 256]) * BLOCK, \
            "block %d" % i
h.shutdown()

# 200 connections that connect and say nothing.
idle = []
for i in range(N):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.connect(sock)
    idle.append(s)
h = t.connect(uri)
assert h.pread(len(pattern), base) == pattern, "pattern with idle clients"
h.shutdown()
for s in idle:
    s.close()
time.sleep(0.5)

# And 200 opened and closed at once, again and again.
for _ in range(3):
    burst = []
    for i in range(N):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.connect(sock)
        burst.append(s)
    for s in burst:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                     struct.pack("ii", 1, 0))
        s.close()

h = t.connect(uri)
assert h.pread(len(pattern), base) == pattern, "pattern at the end"
h.shutdown()
assert t.proc.poll() is None, "server died"
print("hostile-many-conns: OK")
