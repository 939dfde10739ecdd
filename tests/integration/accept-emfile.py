#!/usr/bin/python3
"""Out of file descriptors, the accept loop backs off instead of
spinning: the server runs with a limit of 40 descriptors and 60
clients connect (the rest wait in the listen backlog).  Then:

  - over 2 s the server uses under 0.2 CPU seconds (a loop
    retrying accept at once burns all of one);
  - a client connected before the shortage is still served;
  - the shortage is logged once, not once per attempt;
  - once clients leave, a new one is accepted and served.
Our server only."""
import os
import resource
import socket
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import nbdtest  # noqa: E402
import nbdtest_raw as raw  # noqa: E402

nbdtest.require_ours()
LIMIT = 40
t = nbdtest.Test()
sock, pidfile, log = t.path("s.sock"), t.path("s.pid"), t.path("log")


def limit():
    resource.setrlimit(resource.RLIMIT_NOFILE, (LIMIT, LIMIT))


with open(log, "w") as err:
    p = t.spawn([nbdtest.NBDKIT, "-f", "-U", sock, "-P", pidfile,
                 "memory", "1M"], stderr=err, preexec_fn=limit)
deadline = time.time() + 10
while not (os.path.exists(pidfile) and os.path.getsize(pidfile)):
    assert p.poll() is None and time.time() < deadline, "server did not start"
    time.sleep(0.05)

first = raw.connect(sock)
first.send(raw.CMD_WRITE, 0, 4096, data=b"\x5a" * 4096)
assert first.reply().error == 0

hogs = []
for _ in range(60):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.connect(sock)
    hogs.append(s)
time.sleep(0.5)


def cpu_ticks(pid):
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])     # utime + stime


hz = os.sysconf("SC_CLK_TCK")
c0 = cpu_ticks(p.pid)
time.sleep(2)
used = (cpu_ticks(p.pid) - c0) / hz
print("server CPU over 2 s while out of descriptors: %.2f s" % used)
assert used < 0.2, "the accept loop spins: %.2f s of CPU in 2 s" % used

first.send(raw.CMD_READ, 0, 4096)
r = first.reply()
assert r.error == 0 and r.data == b"\x5a" * 4096, r

with open(log) as f:
    n = sum(1 for line in f if "accept" in line and "descriptor" in line
            or "Too many open files" in line)
print("shortage logged %d time(s)" % n)
assert n == 1, "shortage logged %d times" % n

for s in hogs:
    s.close()
first.close()
time.sleep(0.5)
c = raw.connect(sock)
c.send(raw.CMD_READ, 0, 4096)
r = c.reply()
assert r.error == 0 and r.data == b"\x5a" * 4096, r
c.close()
print("accept-emfile: OK")
