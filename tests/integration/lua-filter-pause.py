"""filters/lua/pause.lua: 'p' on the control socket pauses requests and
is answered 'P' only once the requests in flight have finished;
requests sent while paused wait until 'r' (answered 'R'); anything else
is answered 'X'."""

import os
import socket
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import nbdtest  # noqa: E402

nbdtest.require_ours()
BUILDDIR = os.environ.get("BUILDDIR", ".")
SRCDIR = os.environ.get("SRCDIR", os.path.join(os.path.dirname(
    os.path.abspath(__file__)), "..", ".."))
if not os.path.exists(os.path.join(BUILDDIR, "filters",
                                   "nbdkit-lua-filter.so")):
    nbdtest.skip("the Lua host is not built")
PAUSE = os.path.join(SRCDIR, "filters", "lua", "pause.lua")

t = nbdtest.Test()
plugin = t.path("slow.lua")
with open(plugin, "w") as f:
    f.write(r'''
-- Reads at offset 0 take a second.
function thread_model() return "parallel" end
function get_size(h) return 1048576 end
function pread(h, count, offset, flags)
  if offset == 0 then nbdkit.sleep(1) end
  return string.rep("a", count)
end
''')
ctl = t.path("ctl.sock")
uri = t.start("p", "--filter=" + PAUSE, plugin, "pause-control=" + ctl)
h = t.connect(uri)
assert h.pread(4, 4096) == b"aaaa"

c = socket.socket(socket.AF_UNIX)
c.connect(ctl)
c.settimeout(20)


def command(cmd):
    c.sendall(cmd)
    return c.recv(16)


assert command(b"z") == b"X"

# A slow read is in flight when 'p' arrives: 'P' waits for it.
events = []


def slow_read():
    h2 = t.connect(uri)
    h2.pread(4, 0)
    events.append(("slow read done", time.monotonic()))


th = threading.Thread(target=slow_read)
th.start()
time.sleep(0.3)
assert command(b"p\n") == b"P"
events.append(("paused", time.monotonic()))
th.join()
assert [e[0] for e in events] == ["slow read done", "paused"], events

# While paused, a request waits.
done = []
th = threading.Thread(target=lambda: done.append(h.pread(4, 4096)))
th.start()
time.sleep(0.7)
assert not done, "a request ran while paused"
resumed = time.monotonic()
assert command(b"r") == b"R"
th.join(10)
assert done == [b"aaaa"], done
assert time.monotonic() - resumed < 1.0

# Running normally again.
assert h.pread(4, 8192) == b"aaaa"
c.close()
print("PASS")
