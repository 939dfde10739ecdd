"""Helpers for the tests that run the server with the test plugin
(tests/plugins/testplug.c): where it is, and reading what it records.

    import nbdtest_plug as tp
    t = tp.Test()                                   # nbdtest.Test, ours only
    uri = t.start("x", tp.PLUGIN, "size=1M", "trace=" + t.path("trace"))
    ...
    tp.stop(t)                                      # SIGTERM, exit status
    lines = tp.trace(t.path("trace"))               # [["pwrite", ...], ...]
    stats = tp.stats(t.path("stats"))               # {"max_inflight": 2, ...}
"""

import os
import signal
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import nbdtest  # noqa: E402

PLUGIN = os.environ.get("TESTPLUG") or os.path.join(
    os.environ.get("BUILDDIR", "."), "tests", "plugins",
    "nbdkit-testplug-plugin.so")
PLUGIN = os.path.abspath(PLUGIN)


def Test():
    """An nbdtest.Test, after skipping unless the server is ours (the
    test plugin uses API 3) and the plugin is built."""
    nbdtest.require_ours()
    if not os.path.exists(PLUGIN):
        nbdtest.skip("test plugin not built: %s" % PLUGIN)
    return nbdtest.Test()


def stop(t, proc=None, timeout=10):
    """SIGTERM the server (the last one started by default) and return
    its exit status."""
    p = proc or t.proc
    if p.poll() is None:
        p.send_signal(signal.SIGTERM)
    return p.wait(timeout=timeout)


def trace(path):
    """The trace file as a list of word lists."""
    if not os.path.exists(path):
        return []
    with open(path) as f:
        return [line.split() for line in f if line.strip()]


def writes(path):
    """(offset, count, flags) of every pwrite in the trace."""
    return [(int(w[1]), int(w[2]), w[3]) for w in trace(path)
            if w[0] == "pwrite"]


def stats(path):
    with open(path) as f:
        return {k: int(v) for k, v in
                (line.strip().split("=", 1) for line in f if "=" in line)}


def truncate(path):
    open(path, "w").close()
