#!/usr/bin/python3
"""Zero-copy reads: a plugin's nbdkit_read_lend (core/read.c,
core/transmission.c).

The test plugin with lend=yes lends its RAM disk for every read and
counts loans; a loan released twice, on another thread, or never, or a
pread called while the thread still has loans out, is an error that
aborts the server at unload.  So a clean exit (status 0) with
lends == releases in the stats proves every loan came back exactly
once.  Checked through libnbd, nbdcopy and the raw client, in whole
ranges and in 4 KiB pieces (thousands of loans in one reply, more than
one sendmsg batch), mixed with holes, with DF (flattened), with simple
replies, through cache emulation, and with a read that fails part-way
(loans after the error are never sent, but still released)."""
import os
import subprocess

import nbdtest_raw as rawnbd
import nbdtest_plug as tp

MiB = 1 << 20
t = tp.Test()
data = os.urandom(24 * MiB)

for chunk in ("0", "4096"):
    st = t.path("stats-" + chunk)
    uri = t.start("lend-" + chunk, tp.PLUGIN, "size=32M", "lend=yes",
                  "lend-chunk=" + chunk, "holes=yes", "cache=emulate",
                  "stats=" + st)
    h = t.connect(uri)
    h.pwrite(data, 0)
    assert h.pread(16 * MiB, 0) == data[:16 * MiB], "libnbd: wrong bytes"
    assert h.pread(12345, 777) == data[777:777 + 12345]
    # Across the written end into holes.
    assert h.pread(2 * MiB, 23 * MiB) == data[23 * MiB:] + bytes(MiB)
    h.cache(4 * MiB, 0)
    h.shutdown()

    out = t.path("copy-" + chunk)
    subprocess.run(["timeout", "30", "nbdcopy", uri, out], check=True)
    with open(out, "rb") as f:
        copied = f.read()
    assert copied == data + bytes(8 * MiB), "nbdcopy: wrong bytes"
    os.unlink(out)

    for structured in (True, False):
        c = rawnbd.connect(t.sock, structured=structured)
        k1 = c.send(rawnbd.CMD_READ, 0, 16 * MiB)
        k2 = c.send(rawnbd.CMD_READ, 20 * MiB, 8 * MiB)
        rs = {r.cookie: r for r in (c.reply(), c.reply())}
        r1, r2 = rs[k1], rs[k2]
        assert r1.error == 0 and r1.data == data[:16 * MiB], \
            "raw (structured=%s): wrong bytes" % structured
        assert r2.data == data[20 * MiB:] + bytes(4 * MiB)
        if structured:
            c.send(rawnbd.CMD_READ, 20 * MiB, 8 * MiB, rawnbd.CMD_FLAG_DF)
            r = c.reply()
            assert len(r.chunks) == 1, r.chunks[:3]
            assert r.data == data[20 * MiB:] + bytes(4 * MiB)
        c.close()

    assert tp.stop(t) == 0, "server did not exit cleanly (lend check?)"
    s = tp.stats(st)
    assert s["lends"] > 0, s
    assert s["lends"] == s["releases"], s
    assert s["lend_violations"] == 0, s
    if chunk == "4096":
        assert s["lends"] > 4096, s

# A read failing part-way: loans past the error are released unsent.
st = t.path("stats-err")
fail_at = 3 * MiB + 4096
uri = t.start("lend-err", tp.PLUGIN, "size=8M", "lend=yes",
              "lend-chunk=65536", "fail-read-at=%d" % fail_at, "stats=" + st)
h = t.connect(uri)
h.pwrite(data[:8 * MiB], 0)
h.shutdown()
for structured in (True, False):
    c = rawnbd.connect(t.sock, structured=structured)
    c.send(rawnbd.CMD_READ, 2 * MiB, 2 * MiB)
    r = c.reply()
    assert r.error == rawnbd.EIO, r
    c.send(rawnbd.CMD_READ, 0, MiB)
    r = c.reply()
    assert r.error == 0 and r.data == data[:MiB]
    c.close()
assert tp.stop(t) == 0, "server did not exit cleanly (lend check?)"
s = tp.stats(st)
assert s["lends"] > 0 and s["lends"] == s["releases"], s
assert s["lend_violations"] == 0, s

print("core-lend: OK")
