#!/usr/bin/python3
"""Python filters: a read passed through keeps the holes and lent data
of the layer below, a read the filter changes does not; and a filter
offers a metadata context of its own (meta_context, meta_extents).

Below is a Python plugin whose reads lend the first 4 KiB (bytes 0..255
repeated) and answer the rest with holes.  Through the filter:
  fwd    return next.pread(buf, offset, flags): libnbd's structured read
         sees a data chunk then a hole chunk, as without the filter;
  xor    the filter XORs buf after next.pread: every byte arrives
         XORed, holes included (no hole chunk: the filter's buf counts);
  look   the filter reads buf, then returns the token: it saw the lent
         bytes and the zeroes, and the client still gets the hole;
  hole   after next.pread the filter calls nbdkit.read_hole itself for
         the first 512 bytes: those read as zeroes, the rest as below.
"""
import errno
import os
import sys
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import nbdtest
from nbdtest import nbd

nbdtest.require_ours()
t = nbdtest.Test()
K = 1024

plugin = t.path("lender.py")
with open(plugin, "w") as f:
    f.write('''
import nbdkit
API_VERSION = 3
data = bytes(range(256)) * 16
def get_size(h): return 1 << 20
def pread(h, buf, offset, flags):
    end = offset + len(buf)
    o = offset
    if o < 4096:
        e = min(end, 4096)
        nbdkit.read_lend(o, data[o:e])
        o = e
    if o < end:
        nbdkit.read_hole(o, end - o)
''')

filt = t.path("fwd.py")
with open(filt, "w") as f:
    f.write('''
import errno
import nbdkit
API_VERSION = 3
mode = nbdkit.Param("mode", nbdkit.STRING, required=True)
params = [mode]
def pread(next, h, buf, offset, flags):
    r = next.pread(buf, offset, flags)
    if mode.value == "fwd":
        return r
    if mode.value == "xor":
        for i in range(len(buf)):
            buf[i] ^= 0x5a
    elif mode.value == "look":
        # buf holds what the layer below lent, and zeroes for its holes.
        if bytes(buf[:4]) != bytes([offset % 256, (offset + 1) % 256,
                                    (offset + 2) % 256, (offset + 3) % 256]) \\
           and offset < 4096:
            raise nbdkit.Error(errno.EILSEQ, "lent data not in buf")
        if offset + len(buf) > 4096 and any(buf[max(0, 4096 - offset):]):
            raise nbdkit.Error(errno.EILSEQ, "hole not zero in buf")
        return r
    elif mode.value == "hole":
        nbdkit.read_hole(offset, 512)
def meta_context():
    return "test:parity"
def meta_extents(next, h, count, offset, flags):
    if offset >= 65536:
        raise nbdkit.Error(errno.ENOSPC, "no status there")
    return [(offset, 4096, 1), (offset + 4096, count - 4096, 0)]
''')

pattern = bytes(range(256)) * 16


def chunks_of(h, count, offset):
    got = []

    def cb(buf, off, status, err):
        got.append((status, off, len(buf)))
        return 0
    data = h.pread_structured(count, offset, cb)
    return got, data


def server(mode):
    uri = t.start("fwd-" + mode, "--filter=" + filt, "python", plugin,
                  "mode=" + mode)
    h = nbd.NBD()
    h.add_meta_context("test:parity")
    h.add_meta_context(nbd.CONTEXT_BASE_ALLOCATION)
    h.connect_uri(uri)
    t.handles.append(h)
    return h


DATA, HOLE = nbd.READ_DATA, nbd.READ_HOLE
want = pattern + bytes(4096)

h = server("fwd")
got, data = chunks_of(h, 8 * K, 0)
assert data == want, "fwd: wrong bytes"
assert got == [(DATA, 0, 4096), (HOLE, 4096, 4096)], got
# A read inside the hole only: one hole chunk, no data.
got, data = chunks_of(h, 4 * K, 16 * K)
assert data == bytes(4 * K) and got == [(HOLE, 16 * K, 4 * K)], got
assert h.pread(100, 4000) == pattern[4000:] + bytes(4), "fwd: across"

h = server("xor")
got, data = chunks_of(h, 8 * K, 0)
assert data == bytes(b ^ 0x5a for b in want), "xor: wrong bytes"
assert all(s == DATA for s, _, _ in got), got

h = server("look")
got, data = chunks_of(h, 8 * K, 0)
assert data == want, "look: wrong bytes"
assert got == [(DATA, 0, 4096), (HOLE, 4096, 4096)], got

h = server("hole")
got, data = chunks_of(h, 8 * K, 0)
assert data == bytes(512) + pattern[512:] + bytes(4096), "hole: wrong bytes"

# The filter's own metadata context: offered, listed, and answered.
assert h.can_meta_context("test:parity")
seen = {}


def status(ctx, off, entries, err):
    seen.setdefault(ctx, []).append((off, list(entries)))
    return 0


h.block_status(8 * K, 0, status)
assert seen["test:parity"] == [(0, [4096, 1, 4096, 0])], seen
assert nbd.CONTEXT_BASE_ALLOCATION in seen, seen
nbdtest.expect_error(lambda: h.block_status(8 * K, 65536, status),
                     errno.ENOSPC, "meta_extents raising ENOSPC")

# Listing: the context is among those the server offers.
h2 = nbd.NBD()
h2.set_opt_mode(True)
h2.connect_uri("nbd+unix:///?socket=" + t.sock)
names = []
h2.opt_list_meta_context(lambda name: names.append(name) or 0)
h2.opt_abort()
assert "test:parity" in names and nbd.CONTEXT_BASE_ALLOCATION in names, names
print("ok")
