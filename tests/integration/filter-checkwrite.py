"""checkwrite filter: matching writes succeed, different ones fail with
EIO, zero/trim check for zeroes, and the plugin is never written."""
import errno
import os
import nbdtest
from nbdtest import expect_error

t = nbdtest.Test()
if not nbdtest.OURS:
    nbdtest.skip("filters are ours")
img = t.path("disk.img")
data = os.urandom(256 * 1024) + bytes(256 * 1024)
with open(img, "wb") as f:
    f.write(data)
os.chmod(img, 0o444)  # the plugin may be read-only

uri = t.start("cw", "--filter=checkwrite", "file", img)
h = t.connect(uri)
assert not h.is_read_only()
h.pwrite(data[1000:70000], 1000)
e = expect_error(lambda: h.pwrite(b"\x00" * 10, 100), errno.EIO, "mismatch")
h.zero(256 * 1024, 256 * 1024)
expect_error(lambda: h.zero(8192, 1024), errno.EIO, "zero over data")
expect_error(lambda: h.trim(8192, 1024), errno.EIO, "trim over data")
h.flush()
with open(img, "rb") as f:
    assert f.read() == data

# nbdcopy of the same data through checkwrite succeeds; of other data fails.
src = t.path("src.img")
with open(src, "wb") as f:
    f.write(data)
assert os.system("nbdcopy %s '%s' >/dev/null 2>&1" % (src, uri)) == 0
with open(src, "r+b") as f:
    f.seek(300000)
    f.write(b"z")
assert os.system("nbdcopy %s '%s' >/dev/null 2>&1" % (src, uri)) != 0

# The testplug trace shows no write ever reached the plugin.
trace = t.path("trace")
plug = os.path.join(os.environ.get("BUILDDIR", "."),
                    "tests/plugins/nbdkit-testplug-plugin.so")
uri = t.start("tp", "--filter=checkwrite", plug, "size=1M",
              "readonly-plugin=yes", "trace=" + trace)
h = t.connect(uri)
h.pwrite(bytes(4096), 0)
h.zero(65536, 0)
expect_error(lambda: h.pwrite(b"\x01", 0), errno.EIO)
h.shutdown()
lines = open(trace).read().split("\n")
assert not any(l.startswith(("pwrite", "zero", "trim")) for l in lines), lines
assert any(l.startswith("pread") for l in lines), lines
print("PASS")
