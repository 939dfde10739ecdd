"""One member of a tar archive as a disk, read and written in place.

  nbdkit tar.py tar=disks.tar member=disk.img

Writes change the member's bytes inside the archive; its size cannot
change.  With -r the archive is opened read-only.
"""

import os
import tarfile

import nbdkit

API_VERSION = 3

tar = nbdkit.Param("tar", nbdkit.FILE, required=True, doc="the tar archive")
member = nbdkit.Param("member", nbdkit.STRING, required=True,
                      doc="the member to serve, e.g. disk.img")
params = [tar, member]
start = length = None      # where the member's data lies in the archive


def thread_model():
    return nbdkit.THREAD_MODEL_PARALLEL


def config_complete():
    global start, length
    with tarfile.open(tar.value) as t:
        try:
            m = t.getmember(member.value)
        except KeyError:
            raise nbdkit.Error(2, "%s: no member %s" % (tar.value, member.value))
        if not m.isreg() or m.sparse:
            raise nbdkit.Error(22, "%s: %s is not a plain file" %
                               (tar.value, member.value))
        start, length = m.offset_data, m.size


def open(readonly, exportname, tls):
    return os.open(tar.value, os.O_RDONLY if readonly else os.O_RDWR)


def close(fd):
    os.close(fd)


def get_size(fd):
    return length


def can_multi_conn(fd):
    return True


def pread(fd, buf, offset, flags):
    while len(buf):
        n = os.preadv(fd, [buf], start + offset)
        if n == 0:
            raise nbdkit.Error(5, "the archive is shorter than its header says")
        buf, offset = buf[n:], offset + n


def pwrite(fd, buf, offset, flags):
    while len(buf):
        n = os.pwrite(fd, buf, start + offset)
        buf, offset = buf[n:], offset + n
    if flags & nbdkit.FLAG_FUA:
        os.fdatasync(fd)


def can_fua(fd):
    return nbdkit.FUA_NATIVE


def flush(fd, flags):
    os.fdatasync(fd)
