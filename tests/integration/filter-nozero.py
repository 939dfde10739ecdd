#!/usr/bin/python3
"""nozero: each zeromode and fastzeromode, checked through libnbd and the
test plugin's trace (what actually reached the plugin)."""
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


def server(name, *args):
    trace = t.path(name + ".trace")
    uri = t.start(name, "--filter=nozero", TESTPLUG, "size=1M",
                  "trace=" + trace, *args)
    return t.connect(uri), trace


def lines(trace, word):
    with open(trace) as f:
        return [l.split() for l in f if l.startswith(word + " ")]


# Default (none): WRITE_ZEROES not offered.
h, trace = server("none")
assert not h.can_zero() and not h.can_fast_zero()
nbdtest.expect_error(lambda: h.zero(4096, 0), what="zero with zeromode=none")

# emulate: offered, done with writes; fast zero offered but refused.
h, trace = server("emulate", "zeromode=emulate")
assert h.can_zero() and h.can_fast_zero()
h.pwrite(b"\xff" * 8192, 0)
h.zero(8192, 0)
assert h.pread(8192, 0) == bytes(8192)
assert lines(trace, "zero") == [], "emulate mode passed a zero to the plugin"
assert ["pwrite", "0", "8192", "-"] in lines(trace, "pwrite")
e = nbdtest.expect_error(lambda: h.zero(4096, 0, nbd.CMD_FLAG_FAST_ZERO),
                         what="fast zero in emulate mode")
assert e.errnum == 95, e      # ENOTSUP

# emulate + fastzeromode=none: fast zero not offered.
h, trace = server("emulate-none", "zeromode=emulate", "fastzeromode=none")
assert h.can_zero() and not h.can_fast_zero()

# notrim: reaches the plugin without may_trim.
h, trace = server("notrim", "zeromode=notrim")
h.zero(4096, 0)
assert lines(trace, "zero") == [["zero", "0", "4096", "-"]], lines(trace, "zero")

# plugin: unchanged, may_trim kept.
h, trace = server("plugin", "zeromode=plugin")
h.zero(4096, 0)
assert lines(trace, "zero") == [["zero", "0", "4096", "may_trim"]]

# plugin + slow: offered, always ENOTSUP without reaching the plugin.
h, trace = server("slow", "zeromode=plugin", "fastzeromode=slow")
assert h.can_fast_zero()
e = nbdtest.expect_error(lambda: h.zero(4096, 0, nbd.CMD_FLAG_FAST_ZERO),
                         what="fastzeromode=slow")
assert lines(trace, "zero") == []

# plugin + ignore: the flag is dropped, the zero happens.
h, trace = server("ignore", "zeromode=plugin", "fastzeromode=ignore")
h.pwrite(b"\x01" * 4096, 0)
h.zero(4096, 0, nbd.CMD_FLAG_FAST_ZERO)
assert h.pread(4096, 0) == bytes(4096)
assert lines(trace, "zero") == [["zero", "0", "4096", "may_trim"]]

# In front of memory: emulate works end to end.
uri = t.start("mem", "--filter=nozero", "memory", "1M", "zeromode=emulate")
h = t.connect(uri)
h.pwrite(b"x" * 100, 1000)
h.zero(50, 1020)
assert h.pread(100, 1000) == b"x" * 20 + bytes(50) + b"x" * 30
print("filter-nozero: OK")
