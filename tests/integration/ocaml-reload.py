#!/usr/bin/python3
"""OCaml host, plugins and filters: SIGHUP compiles the script again (into the
cache) and loads it.  A connection open across the reload keeps the
code it opened on (and its handle); a connection opened afterwards
gets the new code, with the same parameters; a script that does not
compile, or fails in config_complete, is reported at once (the
server's message and the compiler's, naming the file and line) and
the last good one keeps serving.  Two OCaml filters stacked reload
each on its own: a broken one keeps its code while the other
reloads."""

import os
import shutil
import signal
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import nbdtest  # noqa: E402

nbdtest.require_ours()
if shutil.which("ocamlfind") is None:
    nbdtest.skip("ocamlfind is not installed")
BUILDDIR = os.environ.get("BUILDDIR", ".")
if not os.path.exists(os.path.join(BUILDDIR, "plugins",
                                   "nbdkit-ocaml-plugin.so")):
    raise AssertionError("ocamlfind is here but the OCaml plugin is not built")

t = nbdtest.Test()
os.environ["XDG_CACHE_HOME"] = t.path("cache")
GOOD = '''
let size = NBDKit.param "size" NBDKit.Size ~required:true ~doc:"disk size"
let tag = "%s"
%s
let () =
  NBDKit.register_plugin ~name:"reload"
    ~open_connection:(fun _ _ _ -> "%s" ^ tag)
    ~get_size:(fun _ -> NBDKit.get size)
    ~pread:(fun h buf _ _ ->
      Bytes.iteri (fun i _ -> Bytes.set buf i h.[i mod 2]) buf)
    ?config_complete ()
'''
NONE = "let config_complete = None"
REFUSE = ('let config_complete = Some (fun () -> '
          'raise (NBDKit.Error (Unix.EINVAL, "refusing to load")))')
BROKEN_SYNTAX = "let () = (\n"
FAILED = nbdtest.RELOAD_FAILED
write = nbdtest.write_atomic


def wait_log(log, needle, n, timeout=120):
    return nbdtest.wait_log(log, needle, n, timeout)


script = t.path("r.ml")
write(script, GOOD % ("1", NONE, "a"))
log = t.path("r.err")
err = open(log, "w")
sock, pidf = t.path("r.sock"), t.path("r.pid")
p = t.spawn([nbdtest.NBDKIT, "-U", sock, "-P", pidf, "-f", "-v", script,
             "size=64K"], stderr=err)
for _ in range(1200):
    if os.path.exists(pidf) and os.path.getsize(pidf):
        break
    time.sleep(0.05)
uri = "nbd+unix:///?socket=" + sock

old = t.connect(uri)
assert old.pread(4, 0) == b"a1a1"

write(script, GOOD % ("2", NONE, "b"))
p.send_signal(signal.SIGHUP)
wait_log(log, "r.ml: reloaded", 1)
assert old.pread(4, 0) == b"a1a1", old.pread(4, 0)
new = t.connect(uri)
assert new.pread(4, 0) == b"b2b2", new.pread(4, 0)
assert new.get_size() == 65536

# Reported at once, before any connection.
for i, (broken, why) in enumerate(
        ((BROKEN_SYNTAX, 'r.ml", line 2'),
         (GOOD % ("3", REFUSE, "c"), "refusing to load"))):
    write(script, broken)
    p.send_signal(signal.SIGHUP)
    text = wait_log(log, "ocaml: " + FAILED, i + 1)
    assert why in text, text
    h = t.connect(uri)
    assert h.pread(4, 0) == b"b2b2", h.pread(4, 0)
    assert old.pread(4, 0) == b"a1a1" and new.pread(4, 0) == b"b2b2"

write(script, GOOD % ("4", NONE, "d"))
p.send_signal(signal.SIGHUP)
wait_log(log, "r.ml: reloaded", 2)
h = t.connect(uri)
assert h.pread(4, 0) == b"d4d4", h.pread(4, 0)
assert old.pread(4, 0) == b"a1a1" and new.pread(4, 0) == b"b2b2"
old.shutdown()
t.handles.remove(old)
assert p.poll() is None, "the server exited"
err.close()
text = open(log).read()
assert text.count(FAILED) == 2, text

# Filters.
ADD = '''
let n = NBDKit.param "%s" NBDKit.Int ~required:true ~doc:"addend"
let factor = %d
let pread next () buf offset flags =
  NBDKit.Next.pread next buf offset flags;
  let k = Int64.to_int (NBDKit.get n) * factor in
  Bytes.iteri
    (fun i c -> Bytes.set buf i (Char.chr ((Char.code c + k) land 255))) buf
let () =
  NBDKit.register_filter ~name:"add"
    ~open_connection:(fun _ _ _ -> ()) ~pread ()
'''
top, low = t.path("top.ml"), t.path("low.ml")
write(top, ADD % ("a", 1))
write(low, ADD % ("b", 1))
log = t.path("f.err")
err = open(log, "w")
sock, pidf = t.path("f.sock"), t.path("f.pid")
p = t.spawn([nbdtest.NBDKIT, "-U", sock, "-P", pidf, "-f", "-v",
             "--filter=" + top, "--filter=" + low, "memory", "1M",
             "a=1", "b=16"], stderr=err)
for _ in range(1200):
    if os.path.exists(pidf) and os.path.getsize(pidf):
        break
    time.sleep(0.05)
uri = "nbd+unix:///?socket=" + sock

old = t.connect(uri)
assert old.pread(1, 0) == bytes([17])

write(top, ADD % ("a", 2))
write(low, ADD % ("b", 3))
p.send_signal(signal.SIGHUP)
wait_log(log, "low.ml: reloaded", 1)
wait_log(log, "top.ml: reloaded", 1)
assert old.pread(1, 0) == bytes([17]), old.pread(1, 0)
new = t.connect(uri)
assert new.pread(1, 0) == bytes([2 + 48]), new.pread(1, 0)

write(top, ADD % ("a", 4))
write(low, "let () = (\n")
p.send_signal(signal.SIGHUP)
text = wait_log(log, FAILED, 1)
assert 'low.ml", line 2' in text, text
wait_log(log, "top.ml: reloaded", 2)
h = t.connect(uri)
assert h.pread(1, 0) == bytes([4 + 48]), h.pread(1, 0)
assert old.pread(1, 0) == bytes([17]) and new.pread(1, 0) == bytes([50])
assert p.poll() is None, "the server exited"
err.close()
text = open(log).read()
assert text.count(FAILED) == 1, text
print("PASS")
