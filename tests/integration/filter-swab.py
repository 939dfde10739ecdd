"""swab filter: 16/32/64-bit swapping of reads and writes, the word as
the minimum block size, swab-bits=8 changes nothing."""
import nbd
import nbdtest

t = nbdtest.Test()
if not nbdtest.OURS:
    nbdtest.skip("filters are ours")
img = t.path("disk.img")
data = bytes(range(256)) * 16
with open(img, "wb") as f:
    f.write(data)


def swapped(b, n):
    return b"".join(b[i:i + n][::-1] for i in range(0, len(b), n))


for bits in (8, 16, 32, 64):
    n = bits // 8
    uri = t.start("s%d" % bits, "--filter=swab", "file", img,
                  "swab-bits=%d" % bits)
    h = t.connect(uri)
    assert h.pread(64, 64) == swapped(data[64:128], n), bits
    if n > 1:
        assert h.get_block_size(nbd.SIZE_MINIMUM) >= n
    h.pwrite(b"ABCDEFGH", 8)
    with open(img, "rb") as f:
        f.seek(8)
        assert f.read(8) == swapped(b"ABCDEFGH", n), bits
    assert h.pread(8, 8) == b"ABCDEFGH"
    with open(img, "wb") as f:
        f.write(data)

# Default is 16 bits; stacked on memory, data round-trips.
uri = t.start("mem", "--filter=swab", "memory", "1M")
h = t.connect(uri)
h.pwrite(b"\x01\x02\x03\x04", 0)
assert h.pread(4, 0) == b"\x01\x02\x03\x04"
print("PASS")
