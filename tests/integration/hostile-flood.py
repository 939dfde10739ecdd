"""A client that floods 64 KiB READ requests and never reads a reply.
The server may not buffer replies without bound: its RSS (VmRSS from
/proc) must grow by less than 200 MiB while the client pushes requests
for a few seconds; another client must be served meanwhile and
afterwards; closing the flooder frees the server's resources.

The same with extended headers, and with WRITE requests carrying
payloads whose replies are never read.
"""

import os
import socket
import struct
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import nbdtest  # noqa: E402
import nbdtest_raw as raw  # noqa: E402

LIMIT_KB = 200 * 1024
FLOOD_SECONDS = 4

t = nbdtest.Test()
uri = t.start("mem", "memory", "64M")
sock = t.sock
pid = t.proc.pid


def rss_kb():
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError("no VmRSS")


pattern = os.urandom(1 << 20)
h = t.connect(uri)
h.pwrite(pattern, 32 << 20)
h.shutdown()
# Warm the server up (threads, buffers) before the baseline.
h = t.connect(uri)
for i in range(64):
    h.pread(65536, i * 65536)
h.shutdown()
base = rss_kb()


def flood(mode):
    c = raw.connect(sock, extended=(mode == "extended"))
    c.s.setblocking(False)
    if mode == "write":
        one = struct.pack(">IHHQQI", raw.REQUEST_MAGIC, 0, raw.CMD_WRITE, 1,
                          0, 65536) + b"\xaa" * 65536
    elif mode == "extended":
        one = struct.pack(">IHHQQQ", raw.EXTENDED_REQUEST_MAGIC, 0,
                          raw.CMD_READ, 1, 0, 65536)
    else:
        one = struct.pack(">IHHQQI", raw.REQUEST_MAGIC, 0, raw.CMD_READ, 1,
                          0, 65536)
    blob = one * max(1, 65536 // len(one))
    sent = 0
    peak = base
    other_ok = 0
    stop = time.time() + FLOOD_SECONDS
    last_check = 0
    pending = memoryview(b"")
    while time.time() < stop:
        if not pending:
            pending = memoryview(blob)
        try:
            n = c.s.send(pending)
            pending = pending[n:]
            sent += n
        except BlockingIOError:
            time.sleep(0.005)
        except (BrokenPipeError, ConnectionResetError):
            break               # the server may also give up on us
        peak = max(peak, rss_kb())
        # Another client is served during the flood.
        if time.time() - last_check > 1:
            last_check = time.time()
            h = t.connect(uri, meta=False)
            assert h.pread(4096, 32 << 20) == pattern[:4096], \
                "other client got wrong data during the flood"
            h.shutdown()
            other_ok += 1
    peak = max(peak, rss_kb())
    print("%s flood: %.1f MiB of requests sent, RSS %d kB -> peak %d kB "
          "(+%d kB); other client served %d times" %
          (mode, sent / 1048576, base, peak, peak - base, other_ok))
    assert other_ok >= 2, "other client not served during the flood"
    assert peak - base < LIMIT_KB, \
        "%s flood: server RSS grew by %d kB (limit %d kB)" % (
            mode, peak - base, LIMIT_KB)
    c.s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                   struct.pack("ii", 1, 0))
    c.close()


modes = ["read", "write"]
if nbdtest.OURS:
    modes.append("extended")
for mode in modes:
    flood(mode)
    # The flooder's connection goes away; the server recovers.
    deadline = time.time() + 10
    while rss_kb() - base > LIMIT_KB and time.time() < deadline:
        time.sleep(0.1)

h = t.connect(uri)
got = h.pread(len(pattern), 32 << 20)
assert got == pattern, "pattern changed"
h.shutdown()
assert t.proc.poll() is None, "server died"
print("hostile-flood: OK")
