"""XOR every byte read and written with a key: a pattern to copy.

  nbdkit --filter=./xor.py PLUGIN ... xorkey=N

xorkey=N (0 to 255, decimal or 0x..; default 0, which changes nothing)
is XORed into every byte written to the layer below and every byte
read from it, so the data below is scrambled and reads give back what
was written.  The same filter exists in Lua (filters/lua/xor.lua) and
OCaml (filters/ocaml/xor.ml).  A zeroed range below would read back
as the key, so zero requests become writes of the key; trim, whose
result is unspecified, passes through.
"""
import errno

import nbdkit

API_VERSION = 3

xorkey = nbdkit.Param("xorkey", nbdkit.INT, default="0",
                      doc="the byte XORed into all data, 0 to 255")
params = [xorkey]
_table = None


def config_complete():
    global _table
    if not 0 <= xorkey.value <= 255:
        raise nbdkit.Error(errno.EINVAL,
                           "xorkey=%d: expected a byte, 0 to 255"
                           % xorkey.value)
    _table = bytes(b ^ xorkey.value for b in range(256))


def thread_model():
    return nbdkit.THREAD_MODEL_PARALLEL


def pread(next, h, buf, offset, flags):
    next.pread(buf, offset, flags)
    buf[:] = bytes(buf).translate(_table)


def pwrite(next, h, buf, offset, flags):
    next.pwrite(bytes(buf).translate(_table), offset, flags)


def zero(next, h, count, offset, flags):
    # Zeroes must read back as zeroes: below, they are the key.
    if xorkey.value == 0:
        return next.zero(count, offset, flags)
    if flags & nbdkit.FLAG_FAST_ZERO:
        raise nbdkit.Error(errno.ENOTSUP, "xor: zeroes are written")
    chunk = bytes([xorkey.value]) * min(count, 1 << 20)
    while count > 0:
        n = min(count, len(chunk))
        next.pwrite(chunk[:n], offset, flags & nbdkit.FLAG_FUA)
        offset += n
        count -= n


def extents(next, h, count, offset, flags):
    # Holes and zeroes below read as the key here: all data, unless
    # the key is 0.
    if xorkey.value == 0:
        return next.extents(count, offset, flags)
    return [(offset, count, 0)]
