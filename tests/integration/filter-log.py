#!/usr/bin/python3
"""log: one line per request with connection, command, offset, count,
flags, result and duration; Connect/Disconnect lines; logappend."""
import os
import re
import sys
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import nbd
import nbdtest

t = nbdtest.Test()
log = t.path("log.txt")
uri = t.start("mem", "--filter=log", "memory", "1M", "logfile=" + log)
h1 = t.connect(uri)
h2 = t.connect(uri)
h1.pwrite(b"a" * 512, 1024, nbd.CMD_FLAG_FUA)
h1.pread(512, 1024)
h2.zero(4096, 8192)
h2.flush()
nbdtest.expect_error(lambda: h2.pread(512, 2 << 20), what="read past end")
h1.shutdown()
h2.shutdown()
t.handles.clear()
t.proc.terminate()
t.proc.wait()

lines = open(log).read().splitlines()
print("\n".join(lines))
TS = r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{6} "
REQ = TS + (r"connection=(\d+) (\w+) id=(\d+) offset=(0x[0-9a-f]+) "
            r"count=(0x[0-9a-f]+) flags=(\S+) return=(\S+)"
            r"(?: error=\w+)? duration=\d+\.\d{6}$")
reqs = [re.match(REQ, l).groups() for l in lines if re.match(REQ, l)]
assert reqs == [
    ("1", "Write", "1", "0x400", "0x200", "fua", "0"),
    ("1", "Read", "2", "0x400", "0x200", "-", "0"),
    ("2", "Zero", "1", "0x2000", "0x1000", "may_trim", "0"),
    ("2", "Flush", "2", "0x0", "0x0", "-", "0"),
], reqs
assert re.match(TS + "Ready$", lines[0]), lines[0]
assert sum(1 for l in lines if re.search(r"connection=\d+ Connect export=\"\" "
                                         r"size=0x100000 write=1", l)) == 2
assert any(re.search("connection=1 Disconnect transactions=2$", l)
           for l in lines)

# A failing request logs return=-1 and the error.
TESTPLUG = os.path.join(os.environ.get("BUILDDIR", "."),
                        "tests/plugins/nbdkit-testplug-plugin.so")
if os.path.exists(TESTPLUG):
    uri = t.start("err", "--filter=log", TESTPLUG, "errno-write=ENOSPC",
                  "logfile=" + log, "logappend=true")
    h = t.connect(uri)
    nbdtest.expect_error(lambda: h.pwrite(b"x", 0), what="ENOSPC write")
    text = open(log).read()
    assert re.search(r"connection=1 Write id=1 offset=0x0 count=0x1 flags=- "
                     r"return=-1 error=ENOSPC duration=", text), text
    assert text.startswith(lines[0]), "logappend=true replaced the file"

# In front of file.
img = t.path("disk.img")
with open(img, "wb") as f:
    f.write(b"hello" + bytes(4091))
log2 = t.path("log2.txt")
uri = t.start("file", "--filter=log", "file", img, "logfile=" + log2)
h = t.connect(uri)
assert h.pread(5, 0) == b"hello"
assert re.search(r"connection=1 Read id=1 offset=0x0 count=0x5 flags=- "
                 r"return=0", open(log2).read())
print("filter-log: OK")
