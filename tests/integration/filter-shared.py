#!/usr/bin/python3
"""shared: every client is served by one context of the plugin.  With a
serialize_requests plugin (the test plugin, 300 ms per read), two clients
run side by side at the server, but the plugin sees one request at a
time (max_inflight=1) on its one shared context, and writes of one
client are seen by the other at once."""
import os
import sys
import time
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import nbd
import nbdtest

TESTPLUG = os.path.join(os.environ.get("BUILDDIR", "."),
                        "tests/plugins/nbdkit-testplug-plugin.so")
if not os.path.exists(TESTPLUG):
    nbdtest.skip("test plugin not built")
t = nbdtest.Test()


def run(name, *filters):
    stats = t.path(name + ".stats")
    uri = t.start(name, *filters, TESTPLUG, "size=1M", "delay-read=300",
                  "thread-model=serialize_requests", "stats=" + stats)
    hs = [t.connect(uri) for _ in range(3)]
    start = time.monotonic()
    cs = [(h, h.aio_pread(nbd.Buffer(512), 0)) for h in hs]
    for h, c in cs:
        while not h.aio_command_completed(c):
            h.poll(-1)
    elapsed = time.monotonic() - start
    hs[0].pwrite(b"shared!", 100)
    seen = hs[1].pread(7, 100)
    for h in hs:
        h.shutdown()
        t.handles.remove(h)
    time.sleep(0.2)
    st = dict(l.strip().split("=", 1) for l in open(stats) if "=" in l)
    return elapsed, int(st["max_inflight"]), seen, hs


# Without the filter: three contexts, reads in parallel in the plugin.
elapsed, inflight, seen, _ = run("plain")
assert inflight == 3 and elapsed < 0.8, (inflight, elapsed)

# With it: one context, the filter serializes the calls.
elapsed, inflight, seen, _ = run("shared", "--filter=shared")
assert inflight == 1, inflight
assert elapsed >= 0.85, elapsed
assert seen == b"shared!"

# The server's thread model stays serialize_requests (the plugin's), so
# clients are not serialized against each other by the server.
uri = t.start("mem", "--filter=shared", "memory", "1M")
h1, h2 = t.connect(uri), t.connect(uri)
assert h1.can_multi_conn()
h1.pwrite(b"abc", 0)
assert h2.pread(3, 0) == b"abc"

img = t.path("disk.img")
with open(img, "wb") as f:
    f.truncate(1 << 20)
uri = t.start("file", "--filter=shared", "file", img)
h1, h2 = t.connect(uri), t.connect(uri)
h1.pwrite(b"xyz", 4096)
h1.flush()
assert h2.pread(3, 4096) == b"xyz"
with open(img, "rb") as f:
    f.seek(4096)
    assert f.read(3) == b"xyz"
print("filter-shared: OK")
