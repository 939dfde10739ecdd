#!/usr/bin/python3
"""Python filters: errors.  An exception in a filter callback fails the
request with EIO (traceback logged with the script's path);
nbdkit.Error(errno) and OSError carry their errno; nbdkit.set_error
picks it; an error from the layer below (a Python plugin here) that the
filter lets through reaches the client with its errno, logged once; a
filter may catch it; EOPNOTSUPP from zero falls back to writes; the
server keeps serving throughout."""
import errno
import os
import sys
import time
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import nbdtest
from nbdtest import nbd

nbdtest.require_ours()
t = nbdtest.Test()
plugin = t.path("plugin.py")
with open(plugin, "w") as f:
    f.write(r'''
import errno
import nbdkit
API_VERSION = 3
disk = bytearray(1 << 20)
def get_size(h): return len(disk)
def pread(h, buf, offset, flags):
    if offset == 65536:
        raise nbdkit.Error(errno.ENOMEM, "plugin refuses 65536")
    buf[:] = disk[offset:offset + len(buf)]
def pwrite(h, buf, offset, flags): disk[offset:offset + len(buf)] = buf
''')
script = t.path("errors.py")
with open(script, "w") as f:
    f.write(r'''
import errno
import nbdkit

def pread(next, h, buf, offset, flags):
    if offset == 0:
        raise RuntimeError("boom in filter pread")
    if offset == 4096:
        raise nbdkit.Error(errno.ENOSPC)
    if offset == 8192:
        raise PermissionError(errno.EPERM, "not allowed")
    if offset == 12288:
        nbdkit.set_error(errno.EINVAL)
        raise ValueError("with set_error")
    if offset == 131072:
        try:
            next.pread(buf, 65536, flags)
        except nbdkit.Error as e:
            assert e.errno == errno.ENOMEM, e.errno
            buf[:] = b"C" * len(buf)   # caught: the filter answers
            return
    next.pread(buf, offset, flags)

def zero(next, h, count, offset, flags):
    raise nbdkit.Error(errno.EOPNOTSUPP)
''')

errlog = open(t.path("stderr"), "w+")
sock = t.path("s.sock")
pidfile = t.path("s.pid")
t.spawn([nbdtest.NBDKIT, "-f", "-U", sock, "-P", pidfile,
         "--filter=" + script, plugin], stderr=errlog)
deadline = time.time() + 10
while not (os.path.exists(pidfile) and os.path.getsize(pidfile)):
    assert time.time() < deadline, "server did not start"
    time.sleep(0.05)
h = t.connect("nbd+unix:///?socket=" + sock)


def stderr():
    errlog.flush()
    errlog.seek(0)
    return errlog.read()


def fails(off, want):
    try:
        h.pread(512, off)
    except nbd.Error as e:
        assert e.errnum == want, "offset %d: %s, wanted %s" % (
            off, errno.errorcode.get(e.errnum), errno.errorcode[want])
        return
    raise AssertionError("offset %d: read did not fail" % off)


fails(0, errno.EIO)
assert "boom in filter pread" in stderr() and script in stderr()
assert "Traceback" in stderr()
fails(4096, errno.ENOSPC)
fails(8192, errno.EPERM)
fails(12288, errno.EINVAL)
fails(65536, errno.ENOMEM)       # from the plugin, let through
assert stderr().count("plugin refuses 65536") == 1, stderr()
assert h.pread(512, 131072) == b"C" * 512     # caught by the filter
h.pwrite(b"x" * 4096, 16384)
h.zero(4096, 16384)                            # falls back to writes
assert h.pread(4096, 16384) == bytes(4096)
assert h.pread(512, 20480) == bytes(512)       # still serving
print("PASS")
