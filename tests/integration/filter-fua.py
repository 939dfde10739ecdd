#!/usr/bin/python3
"""fua: every fuamode, checked through libnbd and the test plugin's trace
(which flags and flushes actually reached the plugin)."""
import os
import sys
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import nbd
import nbdtest

TESTPLUG = os.path.join(os.environ.get("BUILDDIR", "."),
                        "tests/plugins/nbdkit-testplug-plugin.so")
if not os.path.exists(TESTPLUG):
    nbdtest.skip("test plugin not built")
t = nbdtest.Test()


def run(mode, *plugargs):
    """Write once with FUA, once without, then flush; return the handle
    and the plugin's trace (pwrite and flush lines only)."""
    trace = t.path(mode + ".trace")
    args = ["fuamode=" + mode] if mode != "default" else []
    uri = t.start(mode, "--filter=fua", TESTPLUG, "size=1M",
                  "trace=" + trace, *args, *plugargs)
    h = t.connect(uri)
    if h.can_fua():
        h.pwrite(b"a" * 512, 0, nbd.CMD_FLAG_FUA)
    h.pwrite(b"b" * 512, 512)
    if h.can_flush():
        h.flush()
    assert h.pread(1024, 0) == b"a" * 512 + b"b" * 512 if h.can_fua() \
        else h.pread(512, 512) == b"b" * 512
    with open(trace) as f:
        ops = [l.split() for l in f if l.split()[0] in ("pwrite", "flush")]
    return h, ops


h, ops = run("default")
assert not h.can_fua() and h.can_flush()
assert ops == [["pwrite", "512", "512", "-"], ["flush"]], ops

h, ops = run("emulate")
assert h.can_fua()
assert ops == [["pwrite", "0", "512", "-"], ["flush"],
               ["pwrite", "512", "512", "-"], ["flush"]], ops

h, ops = run("native", "fua=emulate")
assert h.can_fua()
# native passes the flag on; the server below emulates it for this
# plugin (fua=emulate) with a flush.
assert ops == [["pwrite", "0", "512", "-"], ["flush"],
               ["pwrite", "512", "512", "-"], ["flush"]], ops

h, ops = run("pass")
assert ops == [["pwrite", "0", "512", "fua"],
               ["pwrite", "512", "512", "-"], ["flush"]], ops

h, ops = run("force")
assert h.can_fua() and h.can_flush()
assert ops == [["pwrite", "0", "512", "fua"],
               ["pwrite", "512", "512", "fua"]], ops

h, ops = run("discard")
assert h.can_fua() and h.can_flush()
assert ops == [["pwrite", "0", "512", "-"],
               ["pwrite", "512", "512", "-"]], ops

# Modes that need the plugin's FUA refuse a plugin without it.
trace = t.path("bad.trace")
uri = t.start("bad", "--filter=fua", TESTPLUG, "size=1M", "fuamode=force",
              "fua=none")
nbdtest.expect_error(lambda: t.connect(uri), what="force without FUA")

# In front of memory and file.
for plugin in (["memory", "1M"], ["file", t.path("disk.img")]):
    if plugin[0] == "file":
        with open(plugin[1], "wb") as f:
            f.truncate(1 << 20)
    uri = t.start("p-" + plugin[0], "--filter=fua", *plugin, "fuamode=force")
    h = t.connect(uri)
    h.pwrite(b"z" * 4096, 8192)
    h.flush()
    assert h.pread(4096, 8192) == b"z" * 4096
print("filter-fua: OK")
