#!/usr/bin/python3
# Random 4 KiB reads (or, with "write", writes of random bytes) at a
# given depth for a given time through libnbd, with libnbd's alignment
# check off (for servers whose minimum block size is larger than
# 4 KiB); prints the requests per second.
#
#   s3-randread.py URI DEPTH SECONDS [write]
import random
import sys
import time

import nbd

uri, depth, secs = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
write = len(sys.argv) > 4 and sys.argv[4] == "write"
data = random.randbytes(4096)
h = nbd.NBD()
h.set_strict_mode(0)
h.connect_uri(uri)
blocks = h.get_size() // 4096
done = 0


def completed(err):
    global done
    done += 1
    return 0


end = time.monotonic() + secs
start = time.monotonic()
while True:
    now = time.monotonic()
    if now < end:
        while h.aio_in_flight() < depth:
            off = random.randrange(blocks) * 4096
            if write:
                h.aio_pwrite(data, off, completion=completed)
            else:
                h.aio_pread(nbd.Buffer(4096), off, completion=completed)
    elif h.aio_in_flight() == 0:
        break
    h.poll(-1)
print("%.1f" % (done / (time.monotonic() - start)))
