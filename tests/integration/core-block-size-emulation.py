#!/usr/bin/python3
"""Emulation respects the plugin's block sizes (core/backend.c).

A plugin announcing block-size=512:4096:65536 must never get a pread or
pwrite larger than 65536 ("The server rejects requests that break them
before the plugin sees them", abi/nbdkit-common.h), not even one the
server makes up itself: zeroing emulated by writes (zero=none), zeroing
that falls back to writes (zero=eopnotsupp) and cache emulated by reads
(cache=emulate) must go in pieces the plugin accepts.  256 KiB requests
(allowed: the virtual maximum defaults to unlimited) must succeed, the
plugin's calls must each be <= 64 KiB, and the bytes must be right.

Also: the plugin's block_size learns whether the client asked for block
sizes (NBD_INFO_BLOCK_SIZE in OPT_GO), even when an earlier option
(SET_META_CONTEXT, as libnbd sends) already opened the export."""
import nbdtest_raw as rawnbd
import nbdtest_plug as tp

K = 1024
t = tp.Test()
problems = []

for mode in ("zero=none", "zero=eopnotsupp", "cache=emulate"):
    st, tr = t.path("stats"), t.path("trace")
    tp.truncate(tr)
    t.start("bse", tp.PLUGIN, "size=1M", "block-size=512:4096:65536",
            mode, "stats=" + st, "trace=" + tr)
    c = rawnbd.connect(t.sock)
    c.send(rawnbd.CMD_WRITE, 0, 64 * K, data=b"x" * (64 * K))
    assert c.reply().error == 0
    cmd = rawnbd.CMD_CACHE if mode.startswith("cache") else \
        rawnbd.CMD_WRITE_ZEROES
    c.send(cmd, 0, 256 * K)
    r = c.reply()
    if r.error:
        problems.append("%s: 256 KiB %s failed with NBD error %d" % (
            mode, "cache" if cmd == rawnbd.CMD_CACHE else "write-zeroes",
            r.error))
    c.send(rawnbd.CMD_READ, 0, 64 * K)
    r = c.reply()
    expect = b"x" * (64 * K) if cmd == rawnbd.CMD_CACHE else bytes(64 * K)
    if r.data != expect:
        problems.append("%s: wrong data after the request" % mode)
    c.close()
    assert tp.stop(t) == 0
    big = [w for w in tp.trace(tr) if w[0] in ("pread", "pwrite")
           and int(w[2]) > 64 * K]
    if big:
        problems.append("%s: the plugin got %d calls larger than its"
                        " maximum 65536, e.g. %s" % (mode, len(big),
                                                     " ".join(big[0])))
    v = tp.stats(st)["limit_violations"]
    if v:
        problems.append("%s: %d limit violations" % (mode, v))

# client_requested in block_size.
for opts, want in ((("go-bs",), 1), (("go",), 0), (("meta", "go-bs"), 1)):
    st = t.path("stats-req")
    t.start("bsr", tp.PLUGIN, "size=1M", "block-size=512:4096:65536",
            "stats=" + st)
    c = rawnbd.Client(t.sock)
    c.structured()
    for o in opts:
        if o == "meta":
            c.meta_context(rawnbd.OPT_SET_META_CONTEXT)
        elif o == "go-bs":
            c.go()
        else:
            c.go(info=())
    c.close()
    assert tp.stop(t) == 0
    got = tp.stats(st)["client_requested_bs"]
    if got != want:
        problems.append("options %s: block_size saw client_requested=%d,"
                        " expected %d" % (" then ".join(opts), got, want))

for p in problems:
    print("FAIL: " + p)
assert not problems, "%d problems" % len(problems)
print("core-block-size-emulation: OK")
