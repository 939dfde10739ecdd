#!/usr/bin/python3
"""cbt: written, trimmed and zeroed blocks show up as dirty in the
qemu:dirty-bitmap:NAME context, rounded out to the granularity, for
every client; seen with libnbd's block_status, nbdinfo --map and
qemu-img map with x-dirty-bitmap."""
import json
import os
import shutil
import subprocess
import sys
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import nbd
import nbdtest

t = nbdtest.Test()
CTX = "qemu:dirty-bitmap:cbt"
K = 1024


def dirty_map(h, ctx=CTX, size=1 << 20, flags=0):
    out = []

    def cb(metacontext, off, entries, err):
        if metacontext == ctx:
            o = off
            for i in range(0, len(entries), 2):
                out.append((o, entries[i], entries[i + 1]))
                o += entries[i]
        return 0
    h.block_status(size, 0, cb, flags)
    # Merge neighbours of one type (a server may split them).
    merged = []
    for o, n, ty in out:
        if merged and merged[-1][2] == ty:
            merged[-1] = (merged[-1][0], merged[-1][1] + n, ty)
        else:
            merged.append((o, n, ty))
    return merged


def connect(uri, ctx=CTX):
    h = nbd.NBD()
    h.add_meta_context(ctx)
    h.add_meta_context(nbd.CONTEXT_BASE_ALLOCATION)
    h.connect_uri(uri)
    t.handles.append(h)
    if not h.can_meta_context(ctx):
        nbdtest.skip("the server does not offer %s (core support missing)"
                     % ctx)
    return h


uri = t.start("mem", "--filter=cbt", "memory", "1M")
h = connect(uri)
assert dirty_map(h) == [(0, 1 << 20, 0)], dirty_map(h)
h.pwrite(b"x" * 10, 200000)                 # in block 3 (192K-256K)
h.zero(4 * K, 512 * K)                      # block 8
h.trim(64 * K + 1, 640 * K)                 # blocks 10 and 11
assert dirty_map(h) == [(0, 192 * K, 0), (192 * K, 64 * K, 1),
                        (256 * K, 256 * K, 0), (512 * K, 64 * K, 1),
                        (576 * K, 64 * K, 0), (640 * K, 128 * K, 1),
                        (768 * K, 256 * K, 0)], dirty_map(h)
# base:allocation still answers beside it.
assert nbdtest.check_extents(h, 0, 1 << 20)
# Another client sees the same bitmap; its writes add to it.
h2 = connect(uri)
h2.pwrite(b"y", (1 << 20) - 1)
assert dirty_map(h2)[-1] == ((1 << 20) - 64 * K, 64 * K, 1), dirty_map(h2)
# REQ_ONE: one extent only.
one = []
h.block_status(1 << 20, 0, lambda m, o, e, err: one.append((m, e)) or 0,
               nbd.CMD_FLAG_REQ_ONE)
assert [e for m, e in one if m == CTX] == [[192 * K, 0]], one

# nbdinfo --map, and qemu-img map with x-dirty-bitmap (which reports
# dirty blocks as "data": false, inverted, as qemu documents).
if shutil.which("nbdinfo"):
    out = subprocess.run(["nbdinfo", "--map=" + CTX, uri], check=True,
                         stdout=subprocess.PIPE, text=True).stdout.split("\n")
    assert out[1].split()[:3] == [str(192 * K), str(64 * K), "1"], out
if shutil.which("qemu-img"):
    opts = ("driver=nbd,server.type=unix,server.path=%s,"
            "x-dirty-bitmap=%s" % (t.sock, CTX))
    js = json.loads(subprocess.run(
        ["qemu-img", "map", "--output=json", "--image-opts", opts],
        check=True, stdout=subprocess.PIPE, text=True).stdout)
    dirty = [(e["start"], e["length"]) for e in js if not e["data"]]
    assert (192 * K, 64 * K) in dirty and (512 * K, 64 * K) in dirty, js

# bitmap= and granularity=, in front of file.
img = t.path("disk.img")
with open(img, "wb") as f:
    f.truncate(1 << 20)
uri = t.start("file", "--filter=cbt", "file", img, "bitmap=backup",
              "granularity=4K")
h = connect(uri, "qemu:dirty-bitmap:backup")
h.pwrite(b"z" * 5000, 8 * K)               # 8K..13K: blocks 2-3
assert dirty_map(h, "qemu:dirty-bitmap:backup") == [
    (0, 8 * K, 0), (8 * K, 8 * K, 1), (16 * K, (1 << 20) - 16 * K, 0)]
print("filter-cbt: OK")
