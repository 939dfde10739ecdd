#!/usr/bin/python3
"""file plugin with -r: the export is read-only, reads work, and every
write-type command fails with EPERM from the server (libnbd strict mode
off so the requests reach it); the file is unchanged."""
import errno
import json
import os
import subprocess
import sys
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import nbdtest
from nbdtest import nbd

t = nbdtest.Test()
img = t.path("ro.img")
data = os.urandom(1 << 20)
open(img, "wb").write(data)

uri = t.start("ro", "file", "file=" + img, extra=["-r"])

out = subprocess.run(["nbdinfo", "--json", uri], check=True, timeout=30,
                     capture_output=True).stdout
e = json.loads(out)["exports"][0]
assert e["is_read_only"] is True, e
assert e["export-size"] == 1 << 20, e

h = t.connect(uri)
assert h.is_read_only()
assert h.pread(4096, 4096) == data[4096:8192]

# Client-side refusal first (strict mode on).
nbdtest.expect_error(lambda: h.pwrite(b"x", 0), what="strict write")

h.set_strict_mode(0)
for fn, what in ((lambda: h.pwrite(b"x" * 512, 0), "write"),
                 (lambda: h.zero(512, 0), "zero"),
                 (lambda: h.trim(512, 0), "trim")):
    nbdtest.expect_error(fn, errno.EPERM, what)
    assert h.pread(512, 0) == data[:512]

h.shutdown()
assert open(img, "rb").read() == data, "read-only file was modified"
print("file-readonly: OK")
