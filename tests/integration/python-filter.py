#!/usr/bin/python3
"""Python filters: every callback of the filter ABI is called with the
layer below (next) first and its result reaches the client through
libnbd; next.* calls reach the layer below (memory)."""
import os
import sys
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import nbdtest
from nbdtest import nbd

nbdtest.require_ours()
t = nbdtest.Test()
log = t.path("log")
script = t.path("every.py")
with open(script, "w") as f:
    f.write(r'''
"""Every filter callback; each call is logged to LOG.

The disk below is stored inverted (each byte xor 0xff)."""
import builtins
import nbdkit

API_VERSION = 3
log = nbdkit.Param("log", nbdkit.STRING, required=True, doc="log file")
params = [log]
events = []


def w(*a):
    events.append(" ".join(str(x) for x in a))
    with builtins.open(log.value, "w") as f:
        f.write("\n".join(events) + "\n")


def inv(b):
    return bytes(x ^ 0xff for x in b)


def load(): events.append("load")
def unload(): w("unload")
def config(key, value): events.append("config %s %r" % (key, value))
def config_complete(): w("config_complete")
def thread_model(): w("thread_model"); return nbdkit.THREAD_MODEL_SERIALIZE_REQUESTS
def get_ready(model): w("get_ready", model)
def after_fork(): w("after_fork")
def cleanup(next): w("cleanup", type(next).__name__)
def preconnect(next, readonly): w("preconnect", type(next).__name__, readonly)
def list_exports(next, readonly, tls):
    below = next.list_exports(readonly, tls)
    w("list_exports", below)
    return [e[0] for e in below] + [("extra", "from the filter")]
def default_export(next, readonly, tls):
    w("default_export", repr(next.default_export()))
    return "extra"
def open(next, readonly, exportname, tls):
    w("open", type(next).__name__, readonly, repr(exportname), tls)
    next.open(readonly=readonly, exportname="")
    return {"name": exportname}
def close(h): w("close", h["name"])
def prepare(next, h, readonly):
    w("prepare", h["name"], readonly, next.get_size(), next.can_write())
def finalize(next, h): w("finalize", h["name"])
def get_size(next, h): w("get_size"); return next.get_size() - 4096
def export_description(next, h):
    return "filtered: %r" % next.export_description()
def block_size(next, h):
    w("block_size", next.block_size())
    return (1, 4096, 65536)
def can_write(next, h): return next.can_write()
def can_flush(next, h): return next.can_flush()
def is_rotational(next, h): return True
def can_trim(next, h): return next.can_trim()
def can_zero(next, h): return nbdkit.ZERO_NATIVE
def can_fast_zero(next, h): return False
def can_fua(next, h): return nbdkit.FUA_NATIVE
def can_multi_conn(next, h): return False
def can_extents(next, h): return nbdkit.EXTENTS_NATIVE
def can_cache(next, h): return nbdkit.CACHE_NATIVE
def pread(next, h, buf, offset, flags):
    w("pread", len(buf), offset, flags)
    next.pread(buf, offset, flags)
    buf[:] = inv(buf)
def pwrite(next, h, buf, offset, flags):
    w("pwrite", len(buf), offset, flags)
    next.pwrite(inv(buf), offset, flags)
def flush(next, h, flags): w("flush", flags); next.flush(flags)
def trim(next, h, count, offset, flags):
    w("trim", count, offset, flags)
    # Trimmed space reads as anything; here: zeroes.
    next.pwrite(b"\xff" * count, offset, flags)
def zero(next, h, count, offset, flags):
    w("zero", count, offset, flags)
    next.pwrite(b"\xff" * count, offset, flags & nbdkit.FLAG_FUA)
def cache(next, h, count, offset, flags):
    w("cache", count, offset, flags)
    assert next.pread(count, offset) == bytes(count)  # memory starts zero
def extents(next, h, count, offset, flags):
    below = next.extents(count, offset, flags)
    w("extents", count, offset, flags, below[0][2])
    # Holes below are 0xff here: data.
    return [(o, l, 0) for (o, l, t) in below]
''')

uri = t.start("every", "--filter=" + script, "memory", "1M", "log=" + log,
              extra=["-t", "4"])
h = t.connect(uri)
assert h.get_size() == (1 << 20) - 4096, h.get_size()
assert h.get_block_size(nbd.SIZE_PREFERRED) == 4096
assert h.get_block_size(nbd.SIZE_MAXIMUM) == 65536
assert h.is_rotational()
assert not h.can_multi_conn()
assert h.can_fua() and h.can_cache() and h.can_zero() and h.can_trim()
assert not h.can_fast_zero()

assert h.pread(512, 0) == b"\xff" * 512     # zeroes below, inverted
h.pwrite(b"hello" * 100, 4096, nbd.CMD_FLAG_FUA)
assert h.pread(500, 4096) == b"hello" * 100
h.zero(4096, 4096)
assert h.pread(4096, 4096) == bytes(4096)
h.trim(4096, 8192)
assert h.pread(4096, 8192) == bytes(4096)
h.flush()
h.cache(4096, 65536)

seen = []
h.block_status(65536, 0, lambda ctx, off, ents, err: seen.append(list(ents)))
assert seen and seen[0][1] == 0, seen   # data, not the hole below

# Exports: the filter's list and default, through opt mode.
h2 = nbd.NBD()
h2.set_opt_mode(True)
h2.connect_uri(uri)
names = []
h2.opt_list(lambda name, desc: names.append((name, desc)))
assert ("extra", "from the filter") in names, names
h2.opt_abort()

h3 = t.connect(uri, full_info=True)
desc = h3.get_export_description()
assert desc.startswith("filtered:"), desc
h3.shutdown()
h.shutdown()
t.handles.clear()
t.proc.terminate()
t.proc.wait(10)

events = open(log).read().splitlines()
print("\n".join(events))
def has(prefix):
    assert any(e.startswith(prefix) for e in events), "no '%s'" % prefix
for p in ["config_complete", "thread_model", "get_ready 3000",
          "preconnect Backend False", "open Context False 'extra' False",
          "prepare extra False 1048576 True", "get_size",
          "block_size (0, 0, 0, 0)",
          "pread 512 0 0", "pwrite 500 4096 2", "zero 4096 4096",
          "trim 4096 8192", "flush 0", "cache 4096 65536",
          "extents 65536 0 0", "list_exports [",
          "default_export ''", "finalize", "close", "cleanup Backend",
          "unload"]:
    has(p)
print("PASS")
