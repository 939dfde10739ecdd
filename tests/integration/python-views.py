#!/usr/bin/python3
"""Python host: buf in pread and pwrite.  The host reuses one memoryview
per thread from call to call; whatever the script does with buf, each
call sees exactly its own data, a pwrite's buf stays read-only with a
hash of its own bytes, and buf, slices of it and memoryview(buf) kept
after returning are cut off (using them raises ValueError) while the
request still succeeds."""
import os
import sys
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import nbdtest

nbdtest.require_ours()
t = nbdtest.Test()

PLUGIN = r'''
import nbdkit
API_VERSION = 3
disk = bytearray(1 << 20)
kept = []
log = []
KEEP = 0x80000

def thread_model():
    return %s

def get_size(h):
    return len(disk)

def check_kept():
    for what, k in kept:
        try:
            k[0]
            log.append(what + " alive")
        except ValueError:
            pass
    kept.clear()

def pread(h, buf, offset, flags):
    check_kept()
    if offset == 0xf0000:                  # the report
        msg = (",".join(log) or "ok").encode()
        buf[:] = msg.ljust(len(buf), b" ")[:len(buf)]
        return
    if buf.readonly or len(buf) != buf.nbytes or buf.format != "B":
        log.append("pread buf is wrong")
    buf[:] = memoryview(disk)[offset:offset + len(buf)]
    if offset == KEEP:
        kept.append(("buf", buf))
    elif offset == KEEP + 0x10000:
        kept.append(("slice", buf[1:5]))
    elif offset == KEEP + 0x20000:
        kept.append(("memoryview", memoryview(buf)))
    elif offset == KEEP + 0x30000:
        buf.release()
    elif offset == KEEP + 0x40000:
        kept.append(("cast", buf.cast("c")))

def pwrite(h, buf, offset, flags):
    check_kept()
    try:
        buf[0:1] = b"x"
        log.append("pwrite buf is writable")
    except TypeError:
        pass
    if hash(buf) != hash(bytes(buf)):
        log.append("stale hash")
    disk[offset:offset + len(buf)] = buf
    if offset == KEEP:
        kept.append(("wbuf", buf))
    elif offset == KEEP + 0x10000:
        kept.append(("wslice", buf[2:]))
'''

for model in ("nbdkit.THREAD_MODEL_SERIALIZE_ALL_REQUESTS",
              "nbdkit.THREAD_MODEL_PARALLEL"):
    path = t.path("views.py")
    with open(path, "w") as f:
        f.write(PLUGIN % model)
    uri = t.start("views", path)
    h = t.connect(uri)

    # Sizes and data that change from call to call.
    expect = bytearray(1 << 20)
    for i, (off, n) in enumerate([(0, 512), (4096, 4096), (65536, 65536),
                                  (3, 1), (200000, 1000), (0, 131072),
                                  (0x80000, 4096), (0x90000, 4096),
                                  (0xa0000, 4096), (0xb0000, 4096),
                                  (0xc0000, 4096)]):
        data = bytes((i * 7 + j) & 0xff for j in range(n))
        h.pwrite(data, off)
        expect[off:off + n] = data
        assert h.pread(n, off) == data, (off, n)
        # Reads of other sizes in between.
        assert h.pread(7, 4096) == expect[4096:4103]
        assert h.pread(300, 0) == expect[:300]
    for off in (0x80000, 0x90000, 0xa0000, 0xb0000, 0xc0000):
        assert h.pread(4096, off) == expect[off:off + 4096], hex(off)
        assert h.pread(512, 0) == expect[:512]
    # Writes that keep their buf, then an ordinary write and read.
    for off in (0x80000, 0x90000):
        h.pwrite(b"k" * 100, off)
        h.pwrite(b"n" * 10, 4096)
        expect[off:off + 100] = b"k" * 100
        expect[4096:4106] = b"n" * 10
    assert h.pread(1 << 20, 0)[:0xf0000] == expect[:0xf0000]
    h.pread(512, 0)                          # checks the last one kept
    report = h.pread(512, 0xf0000).rstrip().decode()
    print("%s: %s" % (model, report))
    assert report == "ok", report
    h.shutdown()
    t.proc.terminate()
    t.proc.wait()
print("python-views: OK")
