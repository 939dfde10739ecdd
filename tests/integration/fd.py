#!/usr/bin/python3
"""--fd N: the server serves one client on an inherited, already
connected socket (one end of a socketpair); libnbd drives the other end
with connect_socket.  Debian's nbdkit 1.32 has no --fd."""
import os
import socket
import sys
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import nbdtest
from nbdtest import nbd

nbdtest.require_ours()
t = nbdtest.Test()
mine, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
fd = theirs.fileno()
p = t.spawn([nbdtest.NBDKIT, "--fd", str(fd), "memory", "1M"],
            pass_fds=[fd])
theirs.close()

h = nbd.NBD()
h.connect_socket(mine.detach())
assert h.get_size() == 1 << 20, h.get_size()
data = os.urandom(4096)
h.pwrite(data, 513)
assert h.pread(4096, 513) == data
h.shutdown()
# The server serves that one client, then exits.
assert p.wait(timeout=10) == 0, p.returncode
print("fd: OK")
