#!/usr/bin/python3
"""FUA as the plugin sees it (core/backend.c).

fua=emulate: a FUA write reaches the plugin as a pwrite without the FUA
flag followed by one flush; the same for trim and zero.
fua=native: the pwrite (trim, zero) carries the FUA flag and no flush
follows.  A write without FUA never flushes.
fua=none: FUA is not advertised."""
import os

import nbdtest_plug as tp
from nbdtest import nbd

t = tp.Test()
data = os.urandom(8192)

for mode in ("emulate", "native"):
    tr = t.path("trace-" + mode)
    uri = t.start("fua-" + mode, tp.PLUGIN, "size=1M", "fua=" + mode,
                  "trace=" + tr)
    h = t.connect(uri)
    assert h.can_fua(), "%s: FUA not advertised" % mode

    def calls(fn):
        tp.truncate(tr)
        fn()
        return [w for w in tp.trace(tr) if w[0] != "pread"]

    got = calls(lambda: h.pwrite(data, 4096, nbd.CMD_FLAG_FUA))
    if mode == "emulate":
        assert got == [["pwrite", "4096", "8192", "-"], ["flush"]], got
    else:
        assert got == [["pwrite", "4096", "8192", "fua"]], got
    assert h.pread(8192, 4096) == data

    got = calls(lambda: h.pwrite(data, 0))
    assert got == [["pwrite", "0", "8192", "-"]], got

    got = calls(lambda: h.trim(4096, 0, nbd.CMD_FLAG_FUA))
    if mode == "emulate":
        assert got == [["trim", "0", "4096", "-"], ["flush"]], got
    else:
        assert got == [["trim", "0", "4096", "fua"]], got

    got = calls(lambda: h.zero(4096, 0, nbd.CMD_FLAG_FUA))
    if mode == "emulate":
        assert got == [["zero", "0", "4096", "may_trim"], ["flush"]], got
    else:
        assert got == [["zero", "0", "4096", "may_trim,fua"]], got

    got = calls(lambda: h.flush())
    assert got == [["flush"]], got
    h.shutdown()
    assert tp.stop(t) == 0

uri = t.start("fua-none", tp.PLUGIN, "size=1M", "fua=none")
h = t.connect(uri)
assert not h.can_fua(), "fua=none: FUA advertised"
h.shutdown()

print("core-fua: OK")
