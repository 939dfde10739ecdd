#!/usr/bin/python3
"""Block status: the last extent of a reply may run past the requested
range (the protocol allows it unless the client set REQ_ONE, as nbdkit
does), so a client learns about a large extent in one request; with
REQ_ONE the one extent ends inside the request.  Extents starting after
the request are not sent.  Checked through libnbd and, for extended
headers, with the raw client."""
import os
import struct
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import nbdtest  # noqa: E402
import nbd  # noqa: E402

M = 1 << 20
t = nbdtest.Test()
img = t.path("holes.img")
with open(img, "wb") as f:
    f.truncate(10 * M)
    f.seek(3 * M)
    f.write(b"\xaa" * M)
# 0-3M hole, 3M-4M data, 4M-10M hole (a file system with 4 KiB blocks).
uri = t.start("f", "file", img)
file_sock = t.sock
h = t.connect(uri)
e = nbdtest.check_extents(h, 0, 4096)
assert e == [(0, 3 * M, 3)], ("final extent clipped", e)
e = nbdtest.check_extents(h, 0, 4096, nbd.CMD_FLAG_REQ_ONE)
assert e == [(0, 4096, 3)], ("REQ_ONE extent past the request", e)
e = nbdtest.check_extents(h, M, 2 * M + 4096)
assert e == [(M, 2 * M, 3), (3 * M, M, 0)], e
e = nbdtest.check_extents(h, 3 * M + 512, 512)
assert e == [(3 * M + 512, M - 512, 0)], e
h.shutdown()

# nbdinfo --map describes the whole disk either way.
out = subprocess.run(["timeout", "30", "nbdinfo", "--map", uri], check=True,
                     capture_output=True, text=True).stdout.split("\n")
rows = [tuple(int(x) for x in line.split()[:3]) for line in out if line]
assert rows == [(0, 3 * M, 3), (3 * M, M, 0), (4 * M, 6 * M, 3)], rows

# Plugins that know the rest of the disk say so at once.
for plugin in ("null", "full"):
    h = t.connect(t.start(plugin, plugin, "10M"))
    e = nbdtest.check_extents(h, 5000, 100)
    assert e == [(5000, 10 * M - 5000, 3)], (plugin, e)
    h.shutdown()

if os.environ.get("OURS") == "1" and nbdtest.NBDKIT != "/usr/bin/nbdkit":
    import nbdtest_raw as raw
    c = raw.Client(file_sock)
    c.extended()
    r = c.meta_context(raw.OPT_SET_META_CONTEXT)
    assert r[-1][0] == raw.REP_ACK, r
    c.go()
    for flags, want in ((0, 3 * M), (raw.CMD_FLAG_REQ_ONE, 4096)):
        c.send(raw.CMD_BLOCK_STATUS, 0, 4096, flags=flags)
        r = c.reply()
        assert r.error == 0, r
        ch = [x for x in r.chunks if x.type != raw.TYPE_NONE]
        assert len(ch) == 1, ch
        # context id, count, then (length, flags) pairs of 64 bits.
        _, n = struct.unpack(">II", ch[0].data[:8])
        desc = struct.unpack(">%dQ" % (2 * n), ch[0].data[8:])
        assert desc == (want, 3), (flags, desc)
    c.close()
print("extents-final: OK")
