#!/usr/bin/python3
"""partitioning plugin: files as partitions of an MBR or GPT disk.
sfdisk reads the synthesized tables; partition bytes read and write
through to the files; writes to the table fail with EIO."""
import json
import os
import shutil
import subprocess
import sys
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import nbdtest
import nbd

if not shutil.which("sfdisk") or not shutil.which("nbdcopy"):
    nbdtest.skip("sfdisk or nbdcopy not installed")

t = nbdtest.Test()
a, b = t.path("a.img"), t.path("b.img")
with open(a, "wb") as f:
    f.write(b"A" * (3 << 20))
with open(b, "wb") as f:
    f.write(b"B" * 1000)           # rounded up to 1024 in the table


def table(uri, name):
    img = t.path(name)
    subprocess.run(["nbdcopy", uri, img], check=True, timeout=60)
    out = subprocess.run(["sfdisk", "--json", img], check=True,
                         capture_output=True, timeout=30).stdout
    v = subprocess.run(["sfdisk", "--verify", img], capture_output=True,
                       timeout=30)
    assert v.returncode == 0 and b"corrupt" not in v.stdout + v.stderr, \
        v.stdout + v.stderr
    return json.loads(out)["partitiontable"]


def check_io(h, parts, files):
    for p, (path, fill) in zip(parts, files):
        off = p["start"] * 512
        assert h.pread(4, off) == fill * 4, (p, h.pread(4, off))
    # Write through partition 2 to b.img.
    off = parts[1]["start"] * 512
    h.pwrite(b"written!", off + 10)
    h.flush()
    with open(b, "rb") as f:
        d = f.read()
    assert d[10:18] == b"written!" and len(d) == 1000, d[:20]
    # Padding past the end of b.img reads as zeroes.
    assert h.pread(24, off + 1000) == bytes(24)
    nbdtest.expect_error(lambda: h.pwrite(b"x" * 512, 0), 5, "write MBR")
    nbdtest.expect_error(lambda: h.pwrite(b"x", off + 1000), 5, "write padding")
    with open(b, "r+b") as f:
        f.write(b"B" * 1000)


# MBR (the default for two small files), with a type byte for b.
uri = t.start("mbr", "partitioning", a, "mbr-id=0x82", "file=" + b)
pt = table(uri, "mbr.img")
assert pt["label"] == "dos", pt
parts = pt["partitions"]
assert len(parts) == 2, parts
assert parts[0]["start"] == 2048 and parts[0]["size"] == 6144, parts
assert parts[0]["type"] == "83", parts
assert parts[1]["start"] == 2048 + 6144 and parts[1]["size"] == 2, parts
assert parts[1]["type"] == "82", parts
h = t.connect(uri)
check_io(h, parts, [(a, b"A"), (b, b"B")])
h.shutdown()

# GPT, alignment 4k for the second file, a type GUID for the first.
swap = "0657FD6D-A4AB-43C4-84E5-0933C84B4F4F"
uri = t.start("gpt", "partitioning", "partition-type=gpt",
              "type-guid=" + swap, a, "type-guid=default",
              "alignment=4096", b)
pt = table(uri, "gpt.img")
assert pt["label"] == "gpt", pt
parts = pt["partitions"]
assert len(parts) == 2, parts
assert parts[0]["start"] == 2048 and parts[0]["size"] == 6144, parts
assert parts[0]["type"] == swap, parts
assert parts[1]["start"] == 2048 + 6144 and parts[1]["size"] == 2, parts
assert parts[1]["type"] == "0FC63DAF-8483-4772-8E79-3D69D8477DE4", parts
h = t.connect(uri)
size = h.get_size()
assert pt["lastlba"] < size // 512 - 33, (pt, size)
# The backup header is the last sector.
assert h.pread(8, size - 512) == b"EFI PART"
check_io(h, parts, [(a, b"A"), (b, b"B")])
h.shutdown()

# Six files: MBR with an extended partition (5 and 6 logical).
small = []
for i in range(6):
    p = t.path("s%d" % i)
    with open(p, "wb") as f:
        f.write(bytes([0x30 + i]) * 512)
    small.append(p)
uri = t.start("ext", "partitioning", "partition-type=mbr",
              "alignment=512", *small)
pt = table(uri, "ext.img")
parts = pt["partitions"]
assert len(parts) == 7, parts              # 1-3, extended 4, logical 5-8
data = [p for p in parts if p["type"] not in ("5", "f")]
assert [p["node"][-1] for p in data] == list("123567"), parts
h = t.connect(uri)
for i, p in enumerate(data):
    assert h.pread(512, p["start"] * 512) == bytes([0x30 + i]) * 512, p
    assert p["size"] == 1, p

# Zero-length partitions are refused.
z = t.path("zero")
open(z, "wb").close()
r = subprocess.run([nbdtest.NBDKIT, "--run", "true", "partitioning", z],
                   capture_output=True, timeout=30)
assert r.returncode != 0 and b"zero-length" in r.stderr, r
print("partitioning-plugin: OK")
