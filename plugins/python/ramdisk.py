#!/usr/sbin/nbdkit python
"""A RAM disk, written in Python.

  nbdkit ramdisk.py size=1G

The disk starts as zeroes and lasts as long as the server runs.  All
clients see the same disk.
"""

import nbdkit

API_VERSION = 3

size = nbdkit.Param("size", nbdkit.SIZE, required=True,
                    doc="size of the disk, e.g. 1G")
params = [size]
disk = None


def thread_model():
    return nbdkit.THREAD_MODEL_PARALLEL


def config_complete():
    global disk
    disk = bytearray(size.value)


def get_size(h):
    return len(disk)


def can_multi_conn(h):
    return True


def pread(h, buf, offset, flags):
    buf[:] = memoryview(disk)[offset:offset + len(buf)]


def pwrite(h, buf, offset, flags):
    disk[offset:offset + len(buf)] = buf


def zero(h, count, offset, flags):
    disk[offset:offset + count] = bytes(count)


def flush(h, flags):
    pass
