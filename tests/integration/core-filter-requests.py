#!/usr/bin/python3
"""What a filter sends below is checked where it calls below
(core/filter.c), not trusted: a filter (tests/plugins/sidethread.c)
that sends the client's writes to a context of the plugin it opened
read-only gets EROFS (the client EPERM) with a message, and the plugin
(tests/plugins/overlap.c) never sees the write; one that announces an
export larger than the plugin and passes reads past the plugin's end
below gets EINVAL with a message naming the layer below, and the
server goes on serving."""
import errno
import os
import subprocess
import sys
import time
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import nbdtest  # noqa: E402
import nbdtest_plug as tp  # noqa: E402

DIR = os.path.dirname(tp.PLUGIN)
PLUGIN = os.path.join(DIR, "nbdkit-overlap-plugin.so")
FILTER = os.path.join(DIR, "nbdkit-sidethread-filter.so")
t = tp.Test()
if not os.path.exists(PLUGIN) or not os.path.exists(FILTER):
    nbdtest.skip("overlap plugin or sidethread filter not built")
MIB = 1024 * 1024


def start(name, *args):
    """Start the server with its messages in a file; return the URI and
    the file's path."""
    sock, pid, log = (t.path(name + x) for x in (".sock", ".pid", ".log"))
    cmd = [nbdtest.NBDKIT, "-U", sock, "-P", pid, "-f",
           "--filter=" + FILTER, PLUGIN, "thread-model=serialize_requests",
           "delay=0", *args]
    p = t.spawn(cmd, stderr=open(log, "w"))
    deadline = time.time() + 10
    while not (os.path.exists(pid) and os.path.getsize(pid)):
        assert p.poll() is None, "server exited %d" % p.returncode
        assert time.time() < deadline, "server did not start"
        time.sleep(0.05)
    t.proc = p
    return "nbd+unix:///?socket=" + sock, log


# A write to a read-only context below.
st = t.path("stats-ro")
uri, log = start("ro", "side-readonly=true", "stats=" + st)
h = t.connect(uri)
assert not h.is_read_only(), "the filter's export should look writable"
nbdtest.expect_error(lambda: h.pwrite(b"x" * 512, 0), errno.EPERM,
                     "write to a read-only layer below")
assert h.pread(512, 0) == bytes(i % 251 for i in range(512))
h.shutdown()
t.handles.remove(h)
assert tp.stop(t) == 0
s = tp.stats(st)
msgs = open(log).read()
print(s, msgs.strip().splitlines()[-3:])
assert s["readonly_writes"] == 0, "the plugin was written read-only: %s" % s
assert "pwrite at offset 0 for 512 bytes: the layer below is read-only" \
    in msgs, msgs

# Reads past the plugin's end, passed below.
uri, log = start("grow", "grow=64K")
h = t.connect(uri)
assert h.get_size() == MIB + 65536
nbdtest.expect_error(lambda: h.pread(4096, MIB), errno.EINVAL,
                     "read past the layer below")
nbdtest.expect_error(lambda: h.pread(8192, MIB - 4096), errno.EINVAL,
                     "read across the end of the layer below")
want = bytes((MIB - 4096 + i) % 251 for i in range(4096))
assert h.pread(4096, MIB - 4096) == want
h.shutdown()
t.handles.remove(h)
assert tp.stop(t) == 0
msgs = open(log).read()
assert ("overlap: pread at offset %d for 4096 bytes is beyond the end of"
        " the layer below (%d)" % (MIB, MIB)) in msgs, msgs
