"""filters/lua/error.lua: requests fail with the errno chosen, at the
rate chosen, per kind of request, and only while the error file exists
when one is given."""

import errno
import os
import subprocess
import time
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import nbdtest  # noqa: E402

nbdtest.require_ours()
BUILDDIR = os.environ.get("BUILDDIR", ".")
SRCDIR = os.environ.get("SRCDIR", os.path.join(os.path.dirname(
    os.path.abspath(__file__)), "..", ".."))
if not os.path.exists(os.path.join(BUILDDIR, "filters",
                                   "nbdkit-lua-filter.so")):
    nbdtest.skip("the Lua host is not built")
ERROR = os.path.join(SRCDIR, "filters", "lua", "error.lua")

t = nbdtest.Test()

# Writes always fail with ENOSPC; reads never fail.
uri = t.start("w", "--filter=" + ERROR, "memory", "1M", "error=ENOSPC",
              "error-pwrite-rate=100%")
h = t.connect(uri)
for _ in range(10):
    assert h.pread(512, 0) == bytes(512)
    nbdtest.expect_error(lambda: h.pwrite(b"x", 0), errno.ENOSPC, "pwrite")
h.zero(512, 0)

# A 50% rate: some reads fail with EIO (the default), some succeed.
uri = t.start("r", "--filter=" + ERROR, "memory", "1M", "error-rate=0.5")
h = t.connect(uri)
ok = failed = 0
for _ in range(200):
    try:
        h.pread(512, 0)
        ok += 1
    except nbdtest.nbd.Error as e:
        assert e.errnum == errno.EIO, e
        failed += 1
assert 40 < failed < 160 and ok + failed == 200, (ok, failed)

# With an error file: errors only while it exists; the per-kind errno
# wins over the general one.
trigger = t.path("trigger")
uri = t.start("f", "--filter=" + ERROR, "memory", "1M", "error=EPERM",
              "error-pread=EINVAL", "error-rate=100%",
              "error-file=" + trigger)
h = t.connect(uri)
h.pread(512, 0)
h.pwrite(b"y", 0)
open(trigger, "w").close()
nbdtest.expect_error(lambda: h.pread(512, 0), errno.EINVAL, "pread on")
nbdtest.expect_error(lambda: h.pwrite(b"y", 0), errno.EPERM, "pwrite on")
os.unlink(trigger)
assert h.pread(1, 0) == b"y"

# A relative error file is relative to where the server started, even
# for a server in the background (which runs in "/").
sock, pidfile = t.path("bg.sock"), t.path("bg.pid")
r = subprocess.run([nbdtest.NBDKIT, "-U", sock, "-P", pidfile,
                    "--filter=" + ERROR, "memory", "1M", "error=ENOSPC",
                    "error-file=rel-trigger"],
                   cwd=t.tmpdir, timeout=30)
assert r.returncode == 0
# The server in the background writes its pid file after the command
# returns, as nbdkit's does: wait for it (bounded).
for _ in range(300):
    if os.path.exists(pidfile) and os.path.getsize(pidfile) > 0:
        break
    time.sleep(0.1)
bgpid = int(open(pidfile).read())
try:
    h = t.connect("nbd+unix:///?socket=" + sock)
    h.pread(512, 0)
    open(t.path("rel-trigger"), "w").close()
    nbdtest.expect_error(lambda: h.pread(512, 0), errno.ENOSPC, "relative")
    os.unlink(t.path("rel-trigger"))
    h.pread(512, 0)
    h.shutdown()
finally:
    os.kill(bgpid, 15)

# Unknown errno names are refused.
r = subprocess.run([nbdtest.NBDKIT, "-U", "-", "--filter=" + ERROR, "memory",
                    "1M", "error=EWHATEVER", "--run", "true"],
                   capture_output=True, text=True, timeout=30)
assert r.returncode != 0 and "EWHATEVER" in r.stderr, r.stderr
print("PASS")
