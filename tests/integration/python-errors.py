#!/usr/bin/python3
"""Python host: exceptions in callbacks.  An exception fails the request
with EIO and logs the traceback with the script's path; nbdkit.Error and
OSError carry their errno to the client; nbdkit.set_error picks the
errno; read_error_at sends the good part first; EOPNOTSUPP from zero
falls back to writes; a failing open refuses only that client; the
server keeps serving throughout."""
import errno
import os
import subprocess
import sys
import time
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import nbdtest
from nbdtest import nbd

nbdtest.require_ours()
t = nbdtest.Test()
script = t.path("errors.py")
with open(script, "w") as f:
    f.write(r'''
import errno
import nbdkit

API_VERSION = 3
disk = bytearray(1 << 20)

def open(readonly, exportname, tls):
    if exportname == "bad":
        raise nbdkit.Error(errno.EPERM, "export 'bad' is refused")
    return exportname

def get_size(h):
    if h == "badsize":
        return "big"
    return len(disk)

def pread(h, buf, offset, flags):
    if offset == 0:
        raise RuntimeError("boom in pread")
    if offset == 4096:
        raise nbdkit.Error(errno.ENOSPC)
    if offset == 8192:
        raise PermissionError(errno.EPERM, "not allowed")
    if offset == 12288:
        nbdkit.set_error(errno.ENOMEM)
        raise ValueError("with set_error")
    if offset == 16384:
        buf[:1024] = b"A" * 1024
        nbdkit.read_error_at(offset + 1024)
        raise nbdkit.Error(errno.EIO, "partial read")
    buf[:] = memoryview(disk)[offset:offset + len(buf)]

def pwrite(h, buf, offset, flags):
    if offset == 0:
        {}["no such key"]
    disk[offset:offset + len(buf)] = buf

def zero(h, count, offset, flags):
    raise nbdkit.Error(errno.EOPNOTSUPP)
''')

sock = t.path("err.sock")
pidfile = t.path("err.pid")
errlog = open(t.path("stderr"), "w+")
p = t.spawn([nbdtest.NBDKIT, "-f", "-U", sock, "-P", pidfile, script],
            stderr=errlog)
deadline = time.time() + 10
while not (os.path.exists(pidfile) and os.path.getsize(pidfile)):
    assert p.poll() is None and time.time() < deadline, "server did not start"
    time.sleep(0.05)
uri = "nbd+unix:///?socket=" + sock
h = t.connect(uri)


def stderr():
    errlog.flush()
    errlog.seek(0)
    return errlog.read()


nbdtest.expect_error(lambda: h.pread(512, 0), errno.EIO, "RuntimeError")
nbdtest.expect_error(lambda: h.pread(512, 4096), errno.ENOSPC, "nbdkit.Error")
nbdtest.expect_error(lambda: h.pread(512, 8192), errno.EPERM, "OSError")
nbdtest.expect_error(lambda: h.pread(512, 12288), errno.ENOMEM, "set_error")
# Still serving after each.
assert h.pread(512, 65536) == bytes(512)

# The traceback, with the path and the callback, for a plain exception;
# only the message for nbdkit.Error.
time.sleep(0.2)
log = stderr()
assert "Traceback" in log and "boom in pread" in log, log
assert script + ": pread:" in log, log
assert 'line 20, in pread' in log, log
assert "[Errno 28] No space left on device" in log, log

# The good part of a partial read reaches the client before the error.
chunks = []


def chunk(buf, offset, status, err):
    chunks.append((offset, bytes(buf), status))
    return 0


nbdtest.expect_error(lambda: h.pread_structured(4096, 16384, chunk),
                     errno.EIO, "read_error_at")
assert chunks[0] == (16384, b"A" * 1024, nbd.READ_DATA), chunks[0][::2]
assert chunks[-1][0] == 16384 + 1024 and chunks[-1][2] == nbd.READ_ERROR

nbdtest.expect_error(lambda: h.pwrite(b"x" * 512, 0), errno.EIO, "KeyError")
assert "KeyError: 'no such key'" in stderr()
h.pwrite(b"y" * 512, 4096 * 100)
assert h.pread(512, 4096 * 100) == b"y" * 512

# zero raising EOPNOTSUPP: the server writes zeroes instead.
h.pwrite(b"z" * 8192, 65536)
h.zero(8192, 65536)
assert h.pread(8192, 65536) == bytes(8192)
# ... unless the client asked for a fast zero.
if h.can_fast_zero():
    nbdtest.expect_error(lambda: h.zero(512, 0, nbd.CMD_FLAG_FAST_ZERO),
                         errno.ENOTSUP, "fast zero")

# A failing open refuses that client only.
nbdtest.expect_error(lambda: t.connect(uri.replace(":///?", ":///bad?")),
                     None, "open raising")
assert "export 'bad' is refused" in stderr()
nbdtest.expect_error(lambda: t.connect(uri.replace(":///?", ":///badsize?")),
                     None, "get_size returning a str")
assert "get_size returned str, expected an int" in stderr(), stderr()
h2 = t.connect(uri)
assert h2.pread(512, 65536) == bytes(512)
assert p.poll() is None, "the server died"
print("python-errors: OK")
