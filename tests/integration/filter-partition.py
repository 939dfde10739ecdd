"""partition filter: MBR primary and logical partitions, and GPT, on
disk images whose tables are written here; each partition's bytes."""
import struct
import nbd
import nbdtest

t = nbdtest.Test()
if not nbdtest.OURS:
    nbdtest.skip("filters are ours")
S = 512


def entry(typ, start, n):
    return struct.pack("<B3sB3sII", 0, b"\0\0\0", typ, b"\0\0\0", start, n)


def fill(img, parts):
    """Each partition's sectors are filled with its number."""
    for num, (start, n) in parts.items():
        img[start * S:(start + n) * S] = bytes([num]) * (n * S)


# MBR: 1 and 2 primary, 3 extended holding logicals 5 and 6.
img = bytearray(8 * 1024 * 1024)
parts = {1: (64, 100), 2: (200, 50), 5: (1024 + 32, 64), 6: (2048 + 32, 96)}
fill(img, parts)
mbr = entry(0x83, 64, 100) + entry(0x83, 200, 50) + \
    entry(0x05, 1024, 4096) + bytes(16)
img[446:512] = mbr + b"\x55\xaa"
ebr1 = entry(0x83, 32, 64) + entry(0x05, 1024, 2048) + bytes(32)
img[1024 * S + 446:1024 * S + 512] = ebr1 + b"\x55\xaa"
ebr2 = entry(0x83, 32, 96) + bytes(48)
img[2048 * S + 446:2048 * S + 512] = ebr2 + b"\x55\xaa"
path = t.path("mbr.img")
open(path, "wb").write(img)

for num, (start, n) in parts.items():
    uri = t.start("m%d" % num, "--filter=partition", "file", path,
                  "partition=%d" % num)
    h = t.connect(uri)
    assert h.get_size() == n * S, (num, h.get_size())
    assert h.pread(n * S, 0) == bytes([num]) * (n * S), num
    h.pwrite(b"written", 5)
    assert open(path, "rb").read()[start * S + 5:start * S + 12] == b"written"
    t.handles.clear()

for bad in (3, 4, 7):
    uri = t.start("bad%d" % bad, "--filter=partition", "file", path,
                  "partition=%d" % bad)
    try:
        t.connect(uri)
        raise AssertionError("partition %d opened" % bad)
    except nbd.Error:
        pass

# GPT: protective MBR, header at LBA 1, 128 entries from LBA 2.
img = bytearray(4 * 1024 * 1024)
gparts = {1: (34, 100), 2: (2048, 2048), 3: (5000, 1000)}
fill(img, gparts)
img[446:512] = entry(0xee, 1, len(img) // S - 1) + bytes(48) + b"\x55\xaa"
hdr = b"EFI PART" + struct.pack("<IIIIQQQQ16sQII", 0x10000, 92, 0, 0, 1,
                                len(img) // S - 1, 34, len(img) // S - 34,
                                b"\x01" * 16, 2, 128, 128)
img[S:S + len(hdr)] = hdr
for num, (start, n) in gparts.items():
    e = b"\xaf" * 16 + bytes([num]) * 16 + struct.pack("<QQQ", start,
                                                        start + n - 1, 0)
    img[2 * S + (num - 1) * 128:2 * S + (num - 1) * 128 + len(e)] = e
path = t.path("gpt.img")
open(path, "wb").write(img)
for num, (start, n) in gparts.items():
    uri = t.start("g%d" % num, "--filter=partition", "file", path,
                  "partition=%d" % num)
    h = t.connect(uri)
    assert h.get_size() == n * S, (num, h.get_size())
    assert h.pread(n * S, 0) == bytes([num]) * (n * S), num
    ext = nbdtest.check_extents(h, 0, n * S)
    assert sum(x[1] for x in ext) == n * S
    t.handles.clear()
uri = t.start("g4", "--filter=partition", "file", path, "partition=4")
try:
    t.connect(uri)
    raise AssertionError("unused GPT entry opened")
except nbd.Error:
    pass
print("PASS")
