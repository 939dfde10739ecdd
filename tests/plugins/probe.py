"""The probe plugin of tests/integration/hosts-defaults.py in Python:
the callbacks named in $PROBE, over a RAM disk."""
import os

API_VERSION = 3
have = set(os.environ.get("PROBE", "").split(","))
disk = bytearray(1 << 20)


def get_size(h):
    return len(disk)


def pread(h, buf, offset, flags):
    buf[:] = disk[offset:offset + len(buf)]


if "pwrite" in have:
    def pwrite(h, buf, offset, flags):
        disk[offset:offset + len(buf)] = buf
if "flush" in have:
    def flush(h, flags):
        pass
if "trim" in have:
    def trim(h, count, offset, flags):
        pass
if "zero" in have:
    def zero(h, count, offset, flags):
        disk[offset:offset + count] = bytes(count)
if "cache" in have:
    def cache(h, count, offset, flags):
        pass
if "extents" in have:
    def extents(h, count, offset, flags):
        return [(offset, count, 0)]
