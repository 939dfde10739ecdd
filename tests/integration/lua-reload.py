#!/usr/bin/python3
"""Lua host, plugins: SIGHUP reloads the script.  A connection open
across the reload keeps working on the code it opened on (and its
handle); a connection opened afterwards gets the new code, with the
same parameters; a script that no longer loads (a syntax error, an
error in config_complete) is reported and the last good one keeps
serving, old and new connections alike.  Also in the parallel model,
where each thread has its own Lua state."""

import os
import signal
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import nbdtest  # noqa: E402

nbdtest.require_ours()
BUILDDIR = os.environ.get("BUILDDIR", ".")
if not os.path.exists(os.path.join(BUILDDIR, "plugins",
                                   "nbdkit-lua-plugin.so")):
    nbdtest.skip("the Lua host is not built")

t = nbdtest.Test()
GOOD = r'''
params = { { name = "size", type = "size", required = true } }
%s
function open(readonly, exportname, is_tls) return { v = "%s" } end
function get_size(h) return nbdkit.param("size") end
function pread(h, count, offset, flags)
  return string.rep(h.v .. "%s", count // 2)
end
'''
BROKEN_SYNTAX = "function pread(h, count\n"
BROKEN_CONFIG = GOOD.replace("%s\n", "%s\nfunction config_complete() "
                             "error('refusing to load') end\n", 1)


write = nbdtest.write_atomic
FAILED = nbdtest.RELOAD_FAILED
RELOADED = nbdtest.RELOADED
wait_log = nbdtest.wait_log


def run(model):
    script = t.path("r-%s.lua" % model)
    tm = 'function thread_model() return "%s" end' % model
    write(script, GOOD % (tm, "a", "1"))
    log = t.path("r-%s.err" % model)
    err = open(log, "w")
    sock = t.path("r-%s.sock" % model)
    pidf = t.path("r-%s.pid" % model)
    p = t.spawn([nbdtest.NBDKIT, "-U", sock, "-P", pidf, "-f", "-v", script,
                 "size=64K"], stderr=err)
    for _ in range(200):
        if os.path.exists(pidf) and os.path.getsize(pidf):
            break
        time.sleep(0.05)
    uri = "nbd+unix:///?socket=" + sock

    old = t.connect(uri)
    assert old.pread(4, 0) == b"a1a1"

    # A new script: the open connection keeps the old one.
    write(script, GOOD % (tm, "b", "2"))
    p.send_signal(signal.SIGHUP)
    wait_log(log, RELOADED, 1)
    assert old.pread(4, 0) == b"a1a1", old.pread(4, 0)
    new = t.connect(uri)
    assert new.pread(4, 0) == b"b2b2", new.pread(4, 0)
    assert new.get_size() == 65536
    assert old.pread(4, 512) == b"a1a1"

    # Broken scripts change nothing, and are reported at once, before
    # any connection: the server's message and the script's error (its
    # file and line).
    for i, (broken, why) in enumerate(
            ((BROKEN_SYNTAX, "r-%s.lua:2:" % model),
             (BROKEN_CONFIG % (tm, "c", "3"), "refusing to load"))):
        write(script, broken)
        p.send_signal(signal.SIGHUP)
        text = wait_log(log, "lua: " + FAILED, i + 1)
        assert why in text, text
        h = t.connect(uri)
        assert h.pread(4, 0) == b"b2b2", h.pread(4, 0)
        assert old.pread(4, 0) == b"a1a1"
        assert new.pread(4, 0) == b"b2b2"

    # Good again: the next connection gets it; the old ones go on.
    write(script, GOOD % (tm, "d", "4"))
    p.send_signal(signal.SIGHUP)
    wait_log(log, RELOADED, 2)
    h = t.connect(uri)
    assert h.pread(4, 0) == b"d4d4"
    assert old.pread(4, 0) == b"a1a1" and new.pread(4, 0) == b"b2b2"
    old.shutdown()
    t.handles.remove(old)
    assert p.poll() is None, "the server exited"
    err.close()
    text = open(log).read()
    assert text.count(FAILED) == 2, text


run("serialize_requests")
run("parallel")
print("PASS")
