#!/usr/bin/python3
"""One rule for the capabilities a plugin leaves out, in every host:
the same probe plugin (tests/plugins/probe.{c,py,lua,ml}), with the
callbacks named in $PROBE, runs in C, Python, Lua and OCaml, and each
must show clients the flags nbdkit documents (nbdkit-plugin(3)) for
a plugin without the can_* callbacks:

  can_write      pwrite exists            can_flush   flush exists
  can_trim       trim exists              can_cache   cache exists
  can_zero       whenever writable (emulated by writes without zero)
  can_fast_zero  writable, and zero absent (zeroing emulated, so the
                 server fails fast zeroes fast itself)
  can_fua        writable, and flush exists (emulated by flush)
  can_multi_conn, is_rotational  no
  base:allocation offered (all data without extents)

and the data written reads back."""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import nbdtest  # noqa: E402
from nbdtest import nbd  # noqa: E402

nbdtest.require_ours()
BUILDDIR = os.environ.get("BUILDDIR", ".")
SRCDIR = os.environ.get("SRCDIR", os.path.join(os.path.dirname(
    os.path.abspath(__file__)), "..", ".."))
PROBES = os.path.join(SRCDIR, "tests", "plugins")

t = nbdtest.Test()
os.environ["XDG_CACHE_HOME"] = t.path("cache")
nbdtest.signal.alarm(170)

HOSTS = [
    ("C", os.path.join(BUILDDIR, "tests", "plugins",
                       "nbdkit-probe-plugin.so"), [], None),
    ("Python", os.path.join(PROBES, "probe.py"), ["python"], "python"),
    ("Lua", os.path.join(PROBES, "probe.lua"), ["lua"], "lua"),
    ("OCaml", os.path.join(PROBES, "probe.ml"), ["ocaml"], "ocaml"),
]

SETS = [
    [],
    ["pwrite"],
    ["pwrite", "zero"],
    ["pwrite", "flush"],
    ["pwrite", "zero", "flush", "trim", "cache", "extents"],
]


def expected(have):
    w = "pwrite" in have
    return {
        "can_write": w,
        "can_flush": "flush" in have,
        "can_trim": w and "trim" in have,
        "can_cache": "cache" in have,
        "can_zero": w,
        "can_fast_zero": w and "zero" not in have,
        "can_fua": w and "flush" in have,
        "can_multi_conn": False,
        "is_rotational": False,
        "base:allocation": True,
    }


def seen(h):
    r = {k: getattr(h, k)() for k in
         ("can_flush", "can_trim", "can_cache", "can_zero",
          "can_fast_zero", "can_fua", "can_multi_conn", "is_rotational")}
    r["can_write"] = not h.is_read_only()
    r["base:allocation"] = h.can_meta_context(nbd.CONTEXT_BASE_ALLOCATION)
    return r


failures = []
ran = 0
for host, plugin, before, kind in HOSTS:
    if kind and not os.path.exists(os.path.join(
            BUILDDIR, "plugins", "nbdkit-%s-plugin.so" % kind)):
        print("%s: host not built, skipped" % host)
        continue
    for i, have in enumerate(SETS):
        os.environ["PROBE"] = ",".join(have)
        name = "%s-%d" % (host, i)
        uri = t.start(name, *before, plugin)
        h = t.connect(uri)
        got, want = seen(h), expected(have)
        for k in want:
            if got[k] != want[k]:
                failures.append("%s with %s: %s is %s, expected %s" %
                                (host, have or "nothing", k, got[k], want[k]))
        if "pwrite" in have:
            h.pwrite(b"probe", 4096)
            h.zero(512, 8192)
        data = h.pread(5, 4096)
        if data != (b"probe" if "pwrite" in have else bytes(5)):
            failures.append("%s with %s: read back %r" % (host, have, data))
        h.shutdown()
        t.handles.remove(h)
        t.proc.terminate()
        t.proc.wait()
        ran += 1

for f in failures:
    print("FAIL: " + f, file=sys.stderr)
print("%d servers, %d failures" % (ran, len(failures)))
sys.exit(1 if failures else 0)
