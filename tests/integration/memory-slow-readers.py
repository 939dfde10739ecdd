#!/usr/bin/python3
"""Clients that stop reading must not hold up other clients' writes
(plugins/memory): four raw clients pipeline 4 MiB reads of the data
and never read the replies, so the server's sends to them stall with
the data lent.  Meanwhile another client's 4 KiB writes into that very
data must each complete within 0.5 s, and read back at once.  Then the
stalled clients read their replies: each 4 KiB block is either the
old data or the new one, never a mix (the bytes a reply is sent from
never change under the send), and blocks nobody wrote are unchanged.

Both allocators are tested."""
import os
import socket
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import nbdtest  # noqa: E402
import nbdtest_raw as rawnbd  # noqa: E402

MiB = 1 << 20
SIZE = 16 * MiB
READ = 4 * MiB
READERS = 4
READS_EACH = 8
BOUND = 0.5
# Blocks written while the readers are stalled, inside what they read.
TARGETS = [o * 4096 for o in (0, 1, 255, 1024, 1025, 2047, 3000, 4095)]

t = nbdtest.Test()


def slow_reader(path):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    s.connect(path)
    c = rawnbd.Client(sock=s, timeout=30)
    c.structured()
    c.go()
    c.offsets = {}
    for i in range(READS_EACH):
        off = (i * READ) % SIZE
        c.offsets[c.send(rawnbd.CMD_READ, off, READ)] = off
    return c


def cpu_ticks(pid):
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])     # utime + stime


def timed_write(h, data, offset):
    start = time.monotonic()
    cookie = h.aio_pwrite(data, offset)
    while not h.aio_command_completed(cookie):
        left = BOUND * 4 - (time.monotonic() - start)
        if left <= 0:
            raise AssertionError(
                "4 KiB write at %d still unanswered after %.1f s while "
                "other clients stall" % (offset, BOUND * 4))
        h.poll(int(left * 1000) + 1)
    return time.monotonic() - start


for allocator in ("sparse", "malloc"):
    uri = t.start("mem-" + allocator, "memory", str(SIZE),
                  "allocator=" + allocator)
    h = t.connect(uri)
    old = bytearray(os.urandom(SIZE))
    for o in range(0, SIZE, 4 * MiB):
        h.pwrite(bytes(old[o:o + 4 * MiB]), o)

    readers = [slow_reader(t.sock) for _ in range(READERS)]
    # Let the server take the reads on and stall in its sends: wait
    # until it stops using CPU (slow under the sanitizers).
    time.sleep(0.5)
    idle_since, last = time.monotonic(), cpu_ticks(t.proc.pid)
    deadline = time.monotonic() + 20
    while time.monotonic() - idle_since < 0.3 and time.monotonic() < deadline:
        time.sleep(0.1)
        now = cpu_ticks(t.proc.pid)
        if now != last:
            idle_since, last = time.monotonic(), now

    new = {}
    times = []
    try:
        for off in TARGETS:
            d = os.urandom(4096)
            new[off] = d
            times.append(timed_write(h, d, off))
    except AssertionError:
        # Let the server go on, so that the test ends.
        for c in readers:
            c.close()
        raise
    worst = max(times)
    print("%s: %d writes under %d stalled readers: worst %.4f s, "
          "mean %.4f s" % (allocator, len(times), READERS, worst,
                           sum(times) / len(times)))
    assert worst < BOUND, "%s: a write took %.3f s" % (allocator, worst)
    for off, d in new.items():
        assert h.pread(4096, off) == d, "%s: block %d" % (allocator, off)

    # The readers are still connected, their replies unread.
    mixed = 0
    for c in readers:
        for _ in range(READS_EACH):
            r = c.reply()
            assert r.error == 0, r
            base = c.offsets[r.cookie]
            for b in range(0, READ, 4096):
                got = r.data[b:b + 4096]
                o = base + b
                if got == old[o:o + 4096]:
                    continue
                assert o in new and got == new[o], \
                    "%s: stalled read at %d: block %d is neither the old " \
                    "nor the new data" % (allocator, base, o)
                mixed += 1
    print("%s: %d blocks of the stalled replies had the new data" %
          (allocator, mixed))
    for c in readers:
        c.close()
    h.shutdown()
    t.handles.remove(h)
    t.proc.terminate()
    t.proc.wait(timeout=10)
    print("%s: OK" % allocator)

print("memory-slow-readers: OK")
