#!/usr/bin/python3
"""sh plugin: what each exit code means (plugins/sh/README.md).
0 ok, 1 error (errno from stderr, EIO if none), 2 missing (zero falls
back to writes), 3 false, 4/5 shut the server down, 6 hard disconnect,
7/8 soft disconnect, others and signals an error."""
import errno
import os
import sys
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import nbdtest
import nbd

nbdtest.require_ours()
t = nbdtest.Test()

# pread's offset (in KiB) picks the exit code; pwrite logs what it got.
SCRIPT = r'''#!/bin/sh
case "$1" in
  get_size) echo 1M ;;
  can_write) exit 0 ;;
  can_trim) exit 3 ;;
  can_zero) exit 3 ;;
  pread)
    case $(( $4 / 1024 )) in
      0) dd if=/dev/zero count=$3 iflag=count_bytes status=none ;;
      1) echo "EINVAL bad offset" >&2; exit 1 ;;
      2) exit 1 ;;
      3) echo "EPERM with a message" >&2; exit 42 ;;
      4) kill -9 $$ ;;
      5) echo "not an errno" >&2; exit 1 ;;
      6) dd if=/dev/zero count=$3 iflag=count_bytes status=none; exit 7 ;;
      7) echo "EPERM going" >&2; exit 8 ;;
      8) exit 6 ;;
      9) dd if=/dev/zero count=$3 iflag=count_bytes status=none; exit 4 ;;
      10) echo "EPERM bye" >&2; exit 5 ;;
      11) echo short ;;
      12) exit 2 ;;
    esac ;;
  pwrite) cat > "$tmpdir/w"; echo "$3 $4" >> "$tmpdir/pwrites"; echo "$tmpdir" > "$TESTDIR/tmpdir" ;;
  *) exit 2 ;;
esac
'''
script = t.path("codes.sh")
with open(script, "w") as f:
    f.write(SCRIPT)
os.chmod(script, 0o755)
os.environ["TESTDIR"] = t.tmpdir


def expect_error(h, off, err):
    try:
        h.pread(512, off)
    except nbd.Error as e:
        assert e.errnum == err, (off, e)
        return
    raise AssertionError("pread at %d should fail" % off)


uri = t.start("codes", "sh", script)
h = t.connect(uri)
assert h.pread(512, 0) == bytes(512)          # 0
expect_error(h, 1024, errno.EINVAL)           # 1 + errno
expect_error(h, 2048, errno.EIO)              # 1, nothing said
expect_error(h, 3072, errno.EPERM)            # 42: an error too
expect_error(h, 4096, errno.EIO)              # killed by a signal
expect_error(h, 5120, errno.EIO)              # unparseable stderr
expect_error(h, 11 * 1024, errno.EIO)         # short read
expect_error(h, 12 * 1024, errno.EIO)         # pread missing

# 3: false.  can_trim false: no trim.  can_zero false: the server
# writes zeroes with pwrite instead (as nbdkit).
assert not h.can_trim()
assert h.can_zero()
h.zero(4096, 65536)
with open(t.path("tmpdir")) as f:
    tmpdir = f.read().strip()
with open(os.path.join(tmpdir, "pwrites")) as f:
    assert f.read().split("\n")[0] == "4096 65536", "zero not emulated"
with open(os.path.join(tmpdir, "w"), "rb") as f:
    assert f.read() == bytes(4096)

# 7: soft disconnect, this reply is still good; the connection ends.
assert h.pread(512, 6 * 1024) == bytes(512)
try:
    h.pread(512, 0)
    assert False, "the connection should be closed after exit 7"
except nbd.Error:
    pass

# 8: soft disconnect with an error.
h = t.connect(uri)
expect_error(h, 7 * 1024, errno.EPERM)
try:
    h.pread(512, 0)
    assert False, "the connection should be closed after exit 8"
except nbd.Error:
    pass

# 6: hard disconnect, no reply at all.
h = t.connect(uri)
try:
    h.pread(512, 8 * 1024)
    assert False, "exit 6 should drop the connection"
except nbd.Error:
    pass
# The server still serves others.
h = t.connect(uri)
assert h.pread(512, 0) == bytes(512)

# 4: the server shuts down (this reply may or may not arrive).
try:
    h.pread(512, 9 * 1024)
except nbd.Error:
    pass
t.proc.wait(timeout=10)

# 5: shut down with an error.
uri = t.start("codes5", "sh", script)
h = t.connect(uri)
try:
    h.pread(512, 10 * 1024)
    assert False, "exit 5 is an error"
except nbd.Error:
    pass
t.proc.wait(timeout=10)

print("sh-exit-codes: OK")
