#!/usr/bin/python3
"""Python host: every API 3 callback is called with the documented
arguments, and its result reaches the client (through libnbd)."""
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
"""Every callback; each call is logged to LOG."""
import builtins
import nbdkit

API_VERSION = 3
log = nbdkit.Param("log", nbdkit.STRING, required=True, doc="log file")
size = nbdkit.Param("size", nbdkit.SIZE, default="1M")
params = [log, size]
events = []
disk = None


def w(*a):
    events.append(" ".join(str(x) for x in a))
    if log.value:
        with builtins.open(log.value, "w") as f:
            f.write("\n".join(events) + "\n")


def load(): w("load")
def unload(): w("unload")
def config(key, value): w("config", key, repr(value))
def config_complete():
    global disk
    w("config_complete", size.value)
    disk = bytearray(size.value)
def thread_model(): w("thread_model"); return nbdkit.THREAD_MODEL_SERIALIZE_REQUESTS
def get_ready(model): w("get_ready", model)
def after_fork(): w("after_fork")
def cleanup(): w("cleanup")
def preconnect(readonly): w("preconnect", readonly)
def list_exports(readonly, tls):
    w("list_exports", readonly, tls)
    nbdkit.add_export("added", "by add_export")
    return ["foo", ("bar", "the bar export")]
def default_export(readonly, tls): w("default_export"); return "foo"
def open(readonly, exportname, tls):
    w("open", readonly, repr(exportname), tls, repr(nbdkit.export_name()))
    return {"name": exportname}
def close(h): w("close", h["name"])
def get_size(h): w("get_size"); return len(disk)
def export_description(h): return "description of " + h["name"]
def block_size(h): return (512, 4096, 65536)
def can_write(h): return True
def can_flush(h): return True
def is_rotational(h): return True
def can_trim(h): return True
def can_zero(h): return nbdkit.ZERO_NATIVE
def can_fast_zero(h): return True
def can_fua(h): return nbdkit.FUA_NATIVE
def can_multi_conn(h): return True
def can_extents(h): return True
def can_cache(h): return nbdkit.CACHE_NATIVE
def pread(h, buf, offset, flags):
    w("pread", len(buf), offset, flags, type(buf).__name__, buf.readonly)
    half = len(disk) // 2
    end = offset + len(buf)
    if offset < half:
        n = min(end, half) - offset
        buf[:n] = memoryview(disk)[offset:offset + n]
    if end > half:
        nbdkit.read_hole(max(offset, half), end - max(offset, half))
def pwrite(h, buf, offset, flags):
    w("pwrite", len(buf), offset, flags, buf.readonly)
    disk[offset:offset + len(buf)] = buf
def flush(h, flags): w("flush", flags)
def trim(h, count, offset, flags): w("trim", count, offset, flags)
def zero(h, count, offset, flags):
    w("zero", count, offset, flags)
    disk[offset:offset + count] = bytes(count)
def cache(h, count, offset, flags): w("cache", count, offset, flags)
def extents(h, count, offset, flags):
    w("extents", count, offset, flags)
    half = len(disk) // 2
    if offset < half:
        nbdkit.add_extent(0, half, 0)
        if flags & nbdkit.FLAG_REQ_ONE:
            return None
    return [(half, len(disk) - half, nbdkit.EXTENT_HOLE | nbdkit.EXTENT_ZERO)]
def dump_plugin(): print("every_dump=1")
''')

uri = t.start("every", script, "log=" + log)
size = 1 << 20
half = size // 2

# List: the returned names and the added one.
h = nbd.NBD()
h.set_opt_mode(True)
h.connect_uri(uri)
seen = []
h.opt_list(lambda name, desc: seen.append((name, desc)))
h.opt_abort()
assert sorted(seen) == [("added", "by add_export"), ("bar", "the bar export"),
                        ("foo", "")], seen

h = nbd.NBD()
h.add_meta_context(nbd.CONTEXT_BASE_ALLOCATION)
h.set_full_info(True)
h.connect_uri(uri.replace(":///?", ":///bar?"))
t.handles.append(h)
assert h.get_size() == size
assert h.get_export_description() == "description of bar"
assert h.get_block_size(nbd.SIZE_MINIMUM) == 512
assert h.get_block_size(nbd.SIZE_PREFERRED) == 4096
assert h.get_block_size(nbd.SIZE_MAXIMUM) == 65536
assert not h.is_read_only()
for cap in ("can_flush", "is_rotational", "can_trim", "can_zero",
            "can_fast_zero", "can_fua", "can_multi_conn", "can_cache"):
    assert getattr(h, cap)(), cap
assert h.can_meta_context(nbd.CONTEXT_BASE_ALLOCATION)

data = os.urandom(8192)
h.pwrite(data, 4096, nbd.CMD_FLAG_FUA)
assert h.pread(8192, 4096) == data
h.flush()
h.trim(4096, 0, nbd.CMD_FLAG_FUA)
h.zero(4096, 4096, nbd.CMD_FLAG_FAST_ZERO | nbd.CMD_FLAG_NO_HOLE)
assert h.pread(4096, 4096) == bytes(4096)
h.cache(4096, 0)

# A read across the middle: data, then a hole the script declared.
chunks = []
def chunk(buf, offset, status, err):
    chunks.append((offset, len(buf), status))
    return 0
got = h.pread_structured(8192, half - 4096, chunk)
assert got[4096:] == bytes(4096)
assert (half, 4096, nbd.READ_HOLE) in chunks, chunks

ext = nbdtest.check_extents(h, 0, size)
assert ext == [(0, half, 0), (half, half, 3)], ext
ext = nbdtest.check_extents(h, 0, size, nbd.CMD_FLAG_REQ_ONE)
assert ext == [(0, half, 0)], ext
h.shutdown()

# The default export is what default_export names.
h2 = t.connect(uri)
assert h2.get_size() == size
h2.shutdown()

t.proc.terminate()
t.proc.wait(timeout=10)
ev = open(log).read().splitlines()
print("\n".join(ev))


def has(line):
    assert line in ev, "no '%s' in the log" % line


for line in ["load", "config log %r" % log, "config size 1048576",
             "config_complete 1048576", "thread_model", "get_ready 3000",
             "after_fork", "preconnect False", "list_exports False False",
             "open False 'bar' False 'bar'", "get_size",
             "pwrite 8192 4096 2 True", "pread 8192 4096 0 memoryview False",
             "flush 0", "trim 4096 0 2", "cache 4096 0 0",
             "extents 1048576 0 0", "extents 1048576 0 4",
             "close bar", "default_export", "open False 'foo' False 'foo'",
             "cleanup", "unload"]:
    has(line)
# zero: FAST_ZERO (8) passed through, MAY_TRIM (1) absent with NO_HOLE.
assert any(e.startswith("zero 4096 4096 ") and int(e.split()[3]) & 8 and
           not int(e.split()[3]) & 1 for e in ev), ev
assert ev.index("load") < ev.index("config_complete 1048576") < \
    ev.index("get_ready 3000") < ev.index("cleanup") < ev.index("unload")

# --dump-plugin runs the script's dump_plugin after the host's lines.
import subprocess
out = subprocess.run([nbdtest.NBDKIT, script, "--dump-plugin"],
                     capture_output=True, text=True, check=True).stdout
assert "every_dump=1" in out.splitlines(), out
print("python-callbacks: OK")
