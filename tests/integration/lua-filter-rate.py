"""filters/lua/rate.lua: reads and writes are limited to the bandwidth
given in bits per second (as nbdkit's rate filter), per server or per
connection; the first `burstiness` seconds of traffic pass at once."""

import os
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import nbdtest  # noqa: E402

nbdtest.require_ours()
BUILDDIR = os.environ.get("BUILDDIR", ".")
SRCDIR = os.environ.get("SRCDIR", os.path.join(os.path.dirname(
    os.path.abspath(__file__)), "..", ".."))
if not os.path.exists(os.path.join(BUILDDIR, "filters",
                                   "nbdkit-lua-filter.so")):
    nbdtest.skip("the Lua host is not built")
RATE = os.path.join(SRCDIR, "filters", "lua", "rate.lua")

t = nbdtest.Test()
MB = 1024 * 1024


def timed(fn):
    start = time.monotonic()
    fn()
    return time.monotonic() - start


def read_all(h, total, chunk=256 * 1024):
    for off in range(0, total, chunk):
        h.pread(chunk, off % (4 * MB))


# 8M bits/s = 1 MiB/s with a 0.1s bucket: 2 MiB take about 2s.
uri = t.start("r", "--filter=" + RATE, "memory", "8M", "rate=8M",
              "burstiness=0.1")
h = t.connect(uri)
el = timed(lambda: read_all(h, 2 * MB))
assert 1.6 <= el < 8, el
# Writes count too.
el = timed(lambda: h.pwrite(b"w" * MB, 0))
assert 0.8 <= el < 5, el

# Without a limit the same reads are fast.
uri = t.start("free", "--filter=" + RATE, "memory", "8M")
h = t.connect(uri)
assert timed(lambda: read_all(h, 2 * MB)) < 1.0



def parallel(handles, total):
    ths = [threading.Thread(target=read_all, args=(hh, total))
           for hh in handles]
    for th in ths:
        th.start()
    for th in ths:
        th.join()


# Per connection: two connections reading at once each get the rate
# (about 1s for 1 MiB each), where a server-wide rate shares it (2s).
uri = t.start("c", "--filter=" + RATE, "memory", "8M",
              "connection-rate=8M", "burstiness=0.1")
hs = [t.connect(uri), t.connect(uri)]
el = timed(lambda: parallel(hs, MB))
assert 0.7 <= el < 1.6, el
uri = t.start("s", "--filter=" + RATE, "memory", "8M", "rate=8M",
              "burstiness=0.1")
hs = [t.connect(uri), t.connect(uri)]
el = timed(lambda: parallel(hs, MB))
assert 1.6 <= el < 8, el

# Writes only: reads unlimited.
uri = t.start("w", "--filter=" + RATE, "memory", "8M", "write-rate=8M",
              "burstiness=0.1")
h = t.connect(uri)
assert timed(lambda: read_all(h, 2 * MB)) < 1.0
el = timed(lambda: h.pwrite(b"w" * MB, 0))
assert 0.8 <= el < 5, el

# rate-file= and connection-rate-file=: the rate changes while the
# server runs; while the file is missing, rate= applies.
for key, start_rate in (("rate", "rate=8M"),
                        ("connection-rate", "connection-rate=8M")):
    name = key + ".txt"
    path = t.path(name)
    if os.path.exists(path):
        os.unlink(path)
    uri = t.start("f" + key, "--filter=" + RATE, "memory", "8M", start_rate,
                  key + "-file=" + path, "burstiness=0.1")
    h = t.connect(uri)
    el = timed(lambda: read_all(h, MB))
    assert 0.7 <= el < 5, (key, "no file yet", el)
    with open(path + ".new", "w") as f:
        f.write("1G\n")
    os.rename(path + ".new", path)
    time.sleep(0.3)
    el = timed(lambda: read_all(h, 4 * MB))
    assert el < 1.0, (key, "after 1G", el)
    with open(path + ".new", "w") as f:
        f.write("8M")
    os.rename(path + ".new", path)
    time.sleep(0.3)
    el = timed(lambda: read_all(h, 2 * MB))
    assert 1.4 <= el < 8, (key, "back to 8M", el)
print("PASS")
