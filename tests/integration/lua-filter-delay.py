"""filters/lua/delay.lua: requests of each kind wait the delay given
(seconds or "NNms"), other kinds are not delayed, and a waiting request
does not hold up other connections (the Lua host lets go of its lock
while a script sleeps)."""

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
DELAY = os.path.join(SRCDIR, "filters", "lua", "delay.lua")

t = nbdtest.Test()
uri = t.start("d", "--filter=" + DELAY, "memory", "1M", "delay-read=400ms",
              "wdelay=0.3", "delay-zero=200ms")
h = t.connect(uri)


def timed(fn):
    start = time.monotonic()
    fn()
    return time.monotonic() - start


assert timed(lambda: h.pread(512, 0)) >= 0.38
assert timed(lambda: h.pwrite(b"x" * 512, 0)) >= 0.28
assert timed(lambda: h.zero(512, 0)) >= 0.18
# Not delayed: flush.
assert timed(lambda: h.flush()) < 0.2

# Four connections reading at once take about one delay, not four.
handles = [t.connect(uri) for _ in range(4)]
threads = [threading.Thread(target=lambda hh=hh: hh.pread(512, 0))
           for hh in handles]
start = time.monotonic()
for th in threads:
    th.start()
for th in threads:
    th.join()
elapsed = time.monotonic() - start
assert 0.38 <= elapsed < 1.2, elapsed

# delay-close: a client that disconnects politely (NBD_CMD_DISC, then
# waits for the server to close) sees the delay, though it has gone.
uri2 = t.start("c", "--filter=" + DELAY, "null", "delay-close=700ms")
hc = t.connect(uri2)
start = time.monotonic()
hc.shutdown()
while True:
    if hc.aio_is_closed() or hc.aio_is_dead():
        break
    hc.poll(1)
elapsed = time.monotonic() - start
assert elapsed >= 0.65, "delay-close=700ms: closed after %.3fs" % elapsed

# A bad delay is refused, naming the key.
import subprocess  # noqa: E402
r = subprocess.run([nbdtest.NBDKIT, "-U", "-", "--filter=" + DELAY, "memory",
                    "1M", "delay-read=soon", "--run", "true"],
                   capture_output=True, text=True, timeout=30)
assert r.returncode != 0 and "delay-read" in r.stderr, r.stderr
print("PASS")
