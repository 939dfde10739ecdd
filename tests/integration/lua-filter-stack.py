#!/usr/bin/python3
"""Lua host: any number of Lua filters stacked, each with its own Lua
state, globals and parameters: the same script twice (each adds its
own byte and counts its own reads in a global) with a second script
between them that answers some reads itself.  A key goes to the
topmost filter that declares it, so the lower copy keeps its defaults.
A filter's error names its own script."""

import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import nbdtest  # noqa: E402

nbdtest.require_ours()
BUILDDIR = os.environ.get("BUILDDIR", ".")
if not os.path.exists(os.path.join(BUILDDIR, "filters",
                                   "nbdkit-lua-filter.so")):
    nbdtest.skip("the Lua host is not built")

t = nbdtest.Test()
add = t.path("add.lua")
with open(add, "w") as f:
    f.write(r'''
-- Adds `add` to every byte read; `tag` names this copy.
params = {
  { name = "add", type = "int", default = 1 },
  { name = "tag", default = "d" },
}
reads = 0
function thread_model() return "parallel" end
function pread(next, h, count, offset, flags)
  reads = reads + 1
  local s = next:pread(count, offset, flags)
  local n = nbdkit.param("add")
  return (s:gsub(".", function (c)
    return string.char((c:byte() + n) % 256) end))
end
function export_description(next, h)
  local below = next:export_description() or ""
  return below .. nbdkit.param("tag") .. reads .. ";"
end
''')
mid = t.path("mid.lua")
with open(mid, "w") as f:
    f.write(r'''
params = { { name = "fail_at", type = "int", default = -1 } }
function pread(next, h, count, offset, flags)
  if offset == nbdkit.param("fail_at") then
    error(nbdkit.errno("ENOSPC", "mid refuses " .. offset))
  end
  if offset == 8192 then return string.rep("m", count) end
  return next:pread(count, offset, flags)
end
''')

args = ["--filter=" + add, "--filter=" + mid, "--filter=" + add,
        "memory", "1M", "add=16", "tag=A", "fail_at=4096"]
uri = t.start("stack", *args)
h = t.connect(uri)
h.pwrite(bytes([0, 1, 2, 250]), 0)
# 16 from the top copy, 1 from the lower one.
assert h.pread(4, 0) == bytes([17, 18, 19, (250 + 17) % 256]), h.pread(4, 0)
# mid answers this one: only the top copy sees it.
assert h.pread(2, 8192) == bytes([(ord("m") + 16) % 256]) * 2
nbdtest.expect_error(lambda: h.pread(512, 4096), 28, "mid's ENOSPC")
h.shutdown()
t.handles.remove(h)
# Each copy counted its own reads in its own globals: the top one all
# three, the lower one only the read mid passed down.
h = t.connect(uri, full_info=True)
d = h.get_export_description()
assert d == "d1;A3;", d
h.shutdown()
t.handles.remove(h)

log = t.path("stack.err")
with open(log, "w") as err:
    r = subprocess.run([nbdtest.NBDKIT, "-U", t.path("s2.sock"),
                        *args, "--run",
                        "nbdsh -u \"$uri\" -c 'h.pread(512, 4096)'"],
                       stderr=err, timeout=30)
text = open(log).read()
assert r.returncode != 0, text
assert "mid.lua: pread: mid refuses 4096" in text, text

# More Lua filters than one: the same script five times.
r = subprocess.run([nbdtest.NBDKIT, "-U", t.path("s3.sock")] +
                   ["--filter=" + add] * 5 + ["memory", "1M", "--run",
                    "nbdsh -u \"$uri\" -c 'print(list(h.pread(2, 0)))'"],
                   capture_output=True, text=True, timeout=30)
assert r.returncode == 0 and r.stdout.strip() == "[5, 5]", (r.stdout, r.stderr)
print("PASS")
