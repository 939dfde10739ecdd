#!/usr/bin/python3
"""multi-conn: modes and dirty tracking, counted with the test plugin's
trace (each flush that reached the plugin), and data seen across
connections in front of memory and file."""
import os
import sys
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import nbd
import nbdtest

TESTPLUG = os.path.join(os.environ.get("BUILDDIR", "."),
                        "tests/plugins/nbdkit-testplug-plugin.so")
if not os.path.exists(TESTPLUG):
    nbdtest.skip("test plugin not built")
t = nbdtest.Test()


def server(name, *args):
    trace = t.path(name + ".trace")
    uri = t.start(name, "--filter=multi-conn", TESTPLUG, "size=1M",
                  "trace=" + trace, *args)

    def flushes():
        with open(trace) as f:
            return sum(1 for l in f if l.strip() == "flush")
    return uri, flushes


# emulate: a flush on one connection flushes every dirty connection.
uri, flushes = server("emulate", "multi-conn-mode=emulate")
h1, h2, h3 = t.connect(uri), t.connect(uri), t.connect(uri)
assert h1.can_multi_conn()
h1.pwrite(b"1" * 512, 0)
h2.pwrite(b"2" * 512, 512)
h1.flush()
assert flushes() == 2, flushes()          # h1 and h2; h3 is clean
h1.flush()
assert flushes() == 2, "a flush with nothing dirty reached the plugin"
# A FUA write replays a flush on the other dirty connections.
h2.pwrite(b"x", 4096)
h1.pwrite(b"y", 8192, nbd.CMD_FLAG_FUA)
assert flushes() == 3, flushes()
assert h3.pread(1, 4096) == b"x" and h3.pread(1, 8192) == b"y"

# track-dirty=off: every flush goes to every connection.
uri, flushes = server("off", "multi-conn-mode=emulate",
                      "multi-conn-track-dirty=off")
h1, h2 = t.connect(uri), t.connect(uri)
h1.flush()
assert flushes() == 2, flushes()

# track-dirty=fast: one flag for the server.
uri, flushes = server("fast", "multi-conn-mode=emulate",
                      "multi-conn-track-dirty=fast")
h1, h2 = t.connect(uri), t.connect(uri)
h1.flush()
assert flushes() == 0
h2.pwrite(b"z", 0)
h1.flush()
assert flushes() == 2, flushes()
h2.flush()
assert flushes() == 2, "fast: the image was clean"

# plugin mode (and auto with a multi-conn plugin): own connection only.
for mode in ("plugin", "auto"):
    uri, flushes = server(mode, "multi-conn-mode=" + mode)
    h1, h2 = t.connect(uri), t.connect(uri)
    assert h1.can_multi_conn()
    h1.pwrite(b"a", 0)
    h2.pwrite(b"b", 1)
    h1.flush()
    assert flushes() == 1, (mode, flushes())

# disable: multi-conn not offered even though the plugin has it.
uri, flushes = server("disable", "multi-conn-mode=disable")
assert not t.connect(uri).can_multi_conn()

# unsafe: offered whatever the plugin says, but never by a server that
# serves one connection at a time (as nbdkit); auto with noparallel
# serialize=connections: not offered.
uri = t.start("unsafe", "--filter=multi-conn", "--filter=noparallel",
              "memory", "1M", "multi-conn-mode=unsafe",
              "serialize=connections")
assert not t.connect(uri).can_multi_conn()
t.handles[-1].shutdown()
t.handles.pop()
uri = t.start("auto-sc", "--filter=multi-conn", "--filter=noparallel",
              "memory", "1M", "serialize=connections")
assert not t.connect(uri).can_multi_conn()
t.handles[-1].shutdown()
t.handles.pop()

# In front of memory and file: writes seen on the other connection.
img = t.path("disk.img")
with open(img, "wb") as f:
    f.truncate(1 << 20)
for name, plugin in (("mem", ["memory", "1M"]), ("file", ["file", img])):
    uri = t.start(name, "--filter=multi-conn", *plugin,
                  "multi-conn-mode=emulate")
    h1, h2 = t.connect(uri), t.connect(uri)
    assert h1.can_multi_conn()
    data = os.urandom(4096)
    h1.pwrite(data, 65536)
    h1.flush()
    assert h2.pread(4096, 65536) == data
print("filter-multi-conn: OK")
