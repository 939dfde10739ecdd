#!/usr/bin/python3
"""Lua host, plugins in the parallel model: one Lua state per server
thread, so a request that computes for a long time (no wait, no lock
let go) does not hold up another client's requests.  Each thread's
state is made as the main one: the script run, its parameters given
(nbdkit.param, config), config_complete and get_ready called; the
handle open returned reaches every callback as a copy (plain data
only: a function is refused with a message).  A script that does not
ask for parallel keeps one state under a lock, where the same slow
request does hold the other client up."""

import os
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import nbdtest  # noqa: E402

nbdtest.require_ours()
BUILDDIR = os.environ.get("BUILDDIR", ".")
if not os.path.exists(os.path.join(BUILDDIR, "plugins",
                                   "nbdkit-lua-plugin.so")):
    nbdtest.skip("the Lua host is not built")

t = nbdtest.Test()


def script(name, model):
    p = t.path(name)
    with open(p, "w") as f:
        f.write(r'''
params = { { name = "letter", default = "x" } }
local ready = "no"
%s
function config_complete() letter = nbdkit.param("letter") end
function get_ready(m) ready = m end
function open(readonly, exportname, is_tls)
  if exportname == "fn" then return function () end end
  return { name = exportname, n = 42, tags = { "a", "b" } }
end
function get_size(h) return 1048576 end
function export_description(h)
  return h.name .. ":" .. h.n .. ":" .. h.tags[2] .. ":" .. ready
end
function pread(h, count, offset, flags)
  if offset == 0 then
    -- Compute for a while: nothing lets go of a lock here.
    local t0 = nbdkit.clock()
    while nbdkit.clock() - t0 < 1.5 do end
  end
  h.n = 0        -- a copy: the next call sees 42 again
  return string.rep(letter, count)
end
''' % (('function thread_model() return "%s" end' % model) if model
       else ""))
    return p


def race(uri):
    """Client A reads the slow offset 0; meanwhile client B reads
    offset 4096: how long B's read takes, and A's data."""
    a = t.connect(uri)
    b = t.connect(uri, full_info=True)
    got = {}

    def slow():
        got["a"] = a.pread(4, 0)
    th = threading.Thread(target=slow)
    th.start()
    time.sleep(0.3)
    t0 = time.monotonic()
    got["b"] = b.pread(4, 4096)
    el = time.monotonic() - t0
    th.join()
    return el, got, b


uri = t.start("par", script("par.lua", "parallel"), "letter=q")
el, got, b = race(uri)
assert got == {"a": b"qqqq", "b": b"qqqq"}, got
assert el < 0.8, "parallel: the other client waited %.2f s" % el
assert b.get_export_description() == ":42:b:parallel", \
    b.get_export_description()
assert b.pread(2, 8192) == b"qq"

# A handle that is not plain data: the connection is refused.
log = t.path("fn.err")
import subprocess  # noqa: E402
with open(log, "w") as err:
    r = subprocess.run([nbdtest.NBDKIT, "-U", t.path("fn.sock"),
                        script("fn.lua", "parallel"), "--run",
                        "nbdsh -u nbd+unix:///fn?socket=$unixsocket "
                        "-c 'h.pread(1, 1)'"],
                       stderr=err, timeout=30)
text = open(log).read()
assert r.returncode != 0, text
assert "open must return plain data" in text and "fn.lua" in text, text

uri = t.start("ser", script("ser.lua", "serialize_requests"), "letter=s")
el, got, b = race(uri)
assert got == {"a": b"ssss", "b": b"ssss"}, got
assert el > 0.8, "one state: the other client waited only %.2f s" % el
print("PASS")
