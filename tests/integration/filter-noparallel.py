#!/usr/bin/python3
"""noparallel: each serialize= mode, by timing slow reads (the test
plugin sleeps 400 ms in every pread) sent in parallel."""
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
DELAY = 0.4


def parallel_reads(handles):
    """One read on each handle (a handle may repeat), all in flight at
    once; return the elapsed time."""
    start = time.monotonic()
    cookies = [(h, h.aio_pread(nbd.Buffer(512), 0)) for h in handles]
    for h, c in cookies:
        while not h.aio_command_completed(c):
            h.poll(-1)
    return time.monotonic() - start


def server(name, *args):
    return t.start(name, "--filter=noparallel", TESTPLUG, "size=1M",
                   "delay-read=%d" % (DELAY * 1000), *args)


# Without the filter the plugin is parallel: two reads take one delay.
uri = t.start("none", TESTPLUG, "size=1M", "delay-read=400")
h = t.connect(uri)
assert parallel_reads([h, h]) < 1.8 * DELAY

# requests (default): one at a time per connection, connections parallel.
uri = server("req")
h1, h2 = t.connect(uri), t.connect(uri)
assert parallel_reads([h1, h1]) >= 2 * DELAY
assert parallel_reads([h1, h2]) < 1.8 * DELAY

# all-requests: one at a time in the whole server.
uri = server("all", "serialize=all-requests")
h1, h2 = t.connect(uri), t.connect(uri)
assert parallel_reads([h1, h2]) >= 2 * DELAY

# connections: a second client waits for the first; no multi-conn.
uri = server("conn", "serialize=connections")
h1 = t.connect(uri)
assert not h1.can_multi_conn()
h2 = nbd.NBD()
h2.aio_connect_uri(uri)
deadline = time.monotonic() + 0.8
while time.monotonic() < deadline:
    h2.poll(100)
assert not h2.aio_is_ready(), "second client served while the first is on"
h1.shutdown()
t.handles.remove(h1)
deadline = time.monotonic() + 10
while not h2.aio_is_ready() and time.monotonic() < deadline:
    h2.poll(100)
assert h2.aio_is_ready(), "second client not served after the first left"
assert h2.pread(4, 0) == bytes(4)
h2.shutdown()

# In front of memory and file.
img = t.path("disk.img")
with open(img, "wb") as f:
    f.write(b"file!" + bytes(4091))
for name, plugin in (("mem", ["memory", "1M"]), ("file", ["file", img])):
    uri = t.start(name, "--filter=noparallel", *plugin,
                  "serialize=all-requests")
    h = t.connect(uri)
    h.pwrite(b"hello", 100)
    assert h.pread(5, 100) == b"hello"
print("filter-noparallel: OK")
