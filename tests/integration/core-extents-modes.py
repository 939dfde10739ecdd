#!/usr/bin/python3
"""can_extents is tri-state for plugins (core/handshake.c
opt_meta_context, core/backend.c backend_extents).

  - none: base:allocation is not offered: nbdinfo --json lists no
    context; raw LIST_META_CONTEXT and SET_META_CONTEXT get only an ACK;
    BLOCK_STATUS is refused with NBD_EINVAL; the extents callback is
    never called;
  - emulate: offered; the whole range is one data extent (flags 0), the
    plugin's extents callback is never called;
  - native: offered; the plugin's extents (written 64K blocks are data,
    the rest holes that read as zeroes) reach the client, and REQ_ONE
    reaches the plugin and limits the reply to one extent."""
import json
import subprocess

import nbdtest
import nbdtest_raw as rawnbd
import nbdtest_plug as tp

K = 1024
t = tp.Test()

for mode in ("none", "emulate", "native"):
    tr = t.path("trace-" + mode)
    uri = t.start("ext-" + mode, tp.PLUGIN, "size=1M", "extents=" + mode,
                  "trace=" + tr)
    j = json.loads(subprocess.run(["timeout", "30", "nbdinfo", "--json", uri],
                                  check=True, capture_output=True).stdout)
    contexts = j["exports"][0]["contexts"]
    if mode == "none":
        assert "base:allocation" not in contexts, contexts
    else:
        assert "base:allocation" in contexts, (mode, contexts)

    for opt in (rawnbd.OPT_LIST_META_CONTEXT, rawnbd.OPT_SET_META_CONTEXT):
        c = rawnbd.Client(t.sock)
        c.structured()
        replies = c.meta_context(opt)
        types = [rt for rt, _ in replies]
        if mode == "none":
            assert types == [rawnbd.REP_ACK], (opt, replies)
        else:
            assert types == [rawnbd.REP_META_CONTEXT, rawnbd.REP_ACK], \
                (mode, opt, replies)
            assert replies[0][1][4:] == b"base:allocation", replies
        if opt == rawnbd.OPT_SET_META_CONTEXT:
            c.go()
            c.send(rawnbd.CMD_BLOCK_STATUS, 0, 256 * K)
            r = c.reply()
            if mode == "none":
                assert r.error == rawnbd.EINVAL, r
            else:
                assert r.error == 0, r
        c.close()

    if mode != "none":
        h = t.connect(uri)
        h.pwrite(b"x" * 4096, 64 * K)
        got = nbdtest.check_extents(h, 0, 256 * K)
        if mode == "emulate":
            assert got == [(0, 256 * K, 0)], got
        else:
            assert got == [(0, 64 * K, 3), (64 * K, 64 * K, 0),
                           (128 * K, 128 * K, 3)], got
            got = nbdtest.check_extents(h, 32 * K, 256 * K,
                                        nbdtest.nbd.CMD_FLAG_REQ_ONE)
            assert got == [(32 * K, 32 * K, 3)], got
            flags = [w[3] for w in tp.trace(tr) if w[0] == "extents"]
            assert flags[-1] == "req_one", flags
        h.shutdown()
    assert tp.stop(t) == 0
    called = [w for w in tp.trace(tr) if w[0] == "extents"]
    if mode == "native":
        assert called, "native: extents callback never called"
    else:
        assert not called, "%s: extents callback called: %r" % (mode, called)

print("core-extents-modes: OK")
