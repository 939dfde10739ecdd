#!/usr/bin/python3
"""8 concurrent clients on one memory server, each writing its own region
with many in-flight requests and verifying it; then one client checks all
regions."""
import os
import sys
import threading
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import nbdtest
from nbdtest import nbd

N = 8
REGION = 4 << 20
CHUNK = 65536
t = nbdtest.Test()
uri = t.start("mem", "memory", str(N * REGION))
datas = [os.urandom(REGION) for _ in range(N)]
errors = []


def client(i):
    try:
        h = nbd.NBD()
        h.connect_uri(uri)
        base = i * REGION
        # Issue all writes asynchronously, then wait for them.
        cookies = [h.aio_pwrite(datas[i][o:o + CHUNK], base + o)
                   for o in range(0, REGION, CHUNK)]
        while h.aio_in_flight() > 0:
            h.poll(-1)
        for c in cookies:
            assert h.aio_command_completed(c)
        h.flush()
        for o in range(0, REGION, 1 << 20):
            got = h.pread(1 << 20, base + o)
            assert got == datas[i][o:o + (1 << 20)], \
                "client %d region mismatch at %d" % (i, o)
        h.shutdown()
    except BaseException as e:
        errors.append((i, e))


threads = [threading.Thread(target=client, args=(i,)) for i in range(N)]
for th in threads:
    th.start()
for th in threads:
    th.join(60)
    assert not th.is_alive(), "client hung"
assert not errors, errors

h = t.connect(uri)
for i in range(N):
    assert h.pread(REGION, i * REGION) == datas[i], "region %d" % i
print("many-clients: OK")
