#!/usr/bin/python3
"""Lua host, filters: SIGHUP reloads every Lua filter's script, each on
its own: a connection open across the reload keeps the code it opened
on, a new one gets the new code of each layer (with the same keys), a
broken script leaves its layer as it was while the others reload."""

import os
import signal
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import nbdtest  # noqa: E402

nbdtest.require_ours()
BUILDDIR = os.environ.get("BUILDDIR", ".")
if not os.path.exists(os.path.join(BUILDDIR, "filters",
                                   "nbdkit-lua-filter.so")):
    nbdtest.skip("the Lua host is not built")

t = nbdtest.Test()
ADD = r'''
params = { { name = "%s", type = "int", required = true } }
function pread(next, h, count, offset, flags)
  local s = next:pread(count, offset, flags)
  local n = nbdkit.param("%s") * %d
  return (s:gsub(".", function (c) return string.char((c:byte() + n) %% 256) end))
end
'''


write = nbdtest.write_atomic
FAILED = nbdtest.RELOAD_FAILED
RELOADED = nbdtest.RELOADED
wait_log = nbdtest.wait_log


top, low = t.path("top.lua"), t.path("low.lua")
write(top, ADD % ("a", "a", 1))
write(low, ADD % ("b", "b", 1))
log = t.path("f.err")
err = open(log, "w")
sock, pidf = t.path("f.sock"), t.path("f.pid")
p = t.spawn([nbdtest.NBDKIT, "-U", sock, "-P", pidf, "-f", "-v",
             "--filter=" + top, "--filter=" + low, "memory", "1M",
             "a=1", "b=16"], stderr=err)
for _ in range(200):
    if os.path.exists(pidf) and os.path.getsize(pidf):
        break
    time.sleep(0.05)
uri = "nbd+unix:///?socket=" + sock

old = t.connect(uri)
assert old.pread(1, 0) == bytes([17])

# Both layers change: x2 (top) and x3 (low).
write(top, ADD % ("a", "a", 2))
write(low, ADD % ("b", "b", 3))
p.send_signal(signal.SIGHUP)
wait_log(log, RELOADED, 2)
assert old.pread(1, 0) == bytes([17])
new = t.connect(uri)
assert new.pread(1, 0) == bytes([2 + 48]), new.pread(1, 0)

# The lower one broken: it keeps its last good code, the top reloads.
write(top, ADD % ("a", "a", 4))
write(low, "function pread(next\n")
p.send_signal(signal.SIGHUP)
# Reported at once, before any connection: the server's message and
# the script's error (its file and line); the top layer reloads.
text = wait_log(log, FAILED, 1)
assert "low.lua:2:" in text, text
wait_log(log, RELOADED, 3)
h = t.connect(uri)
assert h.pread(1, 0) == bytes([4 + 48]), h.pread(1, 0)
assert old.pread(1, 0) == bytes([17]) and new.pread(1, 0) == bytes([50])
assert p.poll() is None
err.close()
text = open(log).read()
assert text.count(FAILED) == 1, text
print("PASS")
