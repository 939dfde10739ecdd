"""A fresh filesystem for each export name, kept between connections.

  nbdkit ondemand.py dir=/var/tmp/exports [size=1G] [fs=ext4]

A client asking for export NAME gets DIR/NAME.img, made on first use
as a sparse SIZE file with an empty filesystem on it (mkfs.FS; fs=none
leaves it blank).  NAME:SIZE picks the size of a new image, e.g.
'scratch:4G'.  One client per export at a time.
"""

import builtins
import ctypes
import errno
import fcntl
import os
import subprocess

import nbdkit

API_VERSION = 3

imagedir = nbdkit.Param("dir", nbdkit.DIRECTORY, required=True,
                   doc="where the images are kept")
size = nbdkit.Param("size", nbdkit.SIZE, default="1G",
                    doc="size of a new image unless the name says")
fs = nbdkit.Param("fs", nbdkit.STRING, default="ext4",
                  doc="filesystem of a new image (mkfs.FS), or none")
params = [imagedir, size, fs]

libc = ctypes.CDLL(None, use_errno=True)
PUNCH_HOLE, KEEP_SIZE, ZERO_RANGE = 0x02, 0x01, 0x10


def thread_model():
    return nbdkit.THREAD_MODEL_PARALLEL


def list_exports(readonly, tls):
    return sorted(f[:-4] for f in os.listdir(imagedir.value) if f.endswith(".img"))


def open(readonly, exportname, tls):
    name, _, want = (exportname or "default").partition(":")
    if not name or "/" in name or name.startswith("."):
        raise nbdkit.Error(errno.EINVAL, "bad export name %r" % exportname)
    path = os.path.join(imagedir.value, name + ".img")
    if not os.path.exists(path):
        new = path + ".new"
        with builtins.open(new, "wb") as f:
            f.truncate(nbdkit.parse_size(want) if want else size.value)
        if fs.value != "none":
            subprocess.run(["mkfs." + fs.value, "-q", "-F", new], check=True,
                           stdout=subprocess.DEVNULL)
        os.rename(new, path)
    fd = os.open(path, os.O_RDONLY if readonly else os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise nbdkit.Error(errno.EBUSY, "export %s is in use" % name)
    return fd


def close(fd):
    os.close(fd)


def get_size(fd):
    return os.fstat(fd).st_size


def pread(fd, buf, offset, flags):
    while len(buf):
        n = os.preadv(fd, [buf], offset)
        if n == 0:
            raise nbdkit.Error(errno.EIO, "short read")
        buf, offset = buf[n:], offset + n


def pwrite(fd, buf, offset, flags):
    while len(buf):
        n = os.pwrite(fd, buf, offset)
        buf, offset = buf[n:], offset + n


def flush(fd, flags):
    os.fdatasync(fd)


def fallocate(fd, mode, offset, count):
    if libc.fallocate(fd, mode, ctypes.c_int64(offset),
                      ctypes.c_int64(count)) != 0:
        raise nbdkit.Error(ctypes.get_errno())


def trim(fd, count, offset, flags):
    fallocate(fd, PUNCH_HOLE | KEEP_SIZE, offset, count)


def zero(fd, count, offset, flags):
    # EOPNOTSUPP from here makes the server write zeroes instead
    # (or fail at once for a fast zero).
    mode = PUNCH_HOLE | KEEP_SIZE if flags & nbdkit.FLAG_MAY_TRIM else ZERO_RANGE
    fallocate(fd, mode, offset, count)


def can_fast_zero(fd):
    return True
