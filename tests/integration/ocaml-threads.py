"""OCaml host and threads: callbacks come from the server's worker
threads, each registered with the OCaml runtime; script code runs one
callback at a time, but NBDKit.nanosleep lets others run while it
waits (two 1-second sleeps on two connections of a parallel script take
about 1 second, not 2).  Many clients at once, with the GC compacting
the heap in between, all read back what they wrote."""

import os
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import nbdtest  # noqa: E402

nbdtest.require_ours()
BUILDDIR = os.environ.get("BUILDDIR", ".")
if not os.path.exists(os.path.join(BUILDDIR, "plugins",
                                   "nbdkit-ocaml-plugin.so")):
    nbdtest.skip("the OCaml host is not built")

t = nbdtest.Test()
os.environ["XDG_CACHE_HOME"] = t.path("cache")
script = t.path("threads.ml")
with open(script, "w") as f:
    f.write(r'''
let disk = Bytes.make (8 * 1024 * 1024) '\000'
let inside = ref 0     (* callbacks running script code right now *)
let overlap = ref 0    (* times two ran script code at once *)
let calls = ref 0

let guard f =
  incr inside;
  if !inside > 1 then incr overlap;
  let r = try f () with e -> decr inside; raise e in
  decr inside;
  r

let pread () buf offset _ =
  if offset = 0L && Bytes.length buf = 512 then
    NBDKit.nanosleep 1 0      (* lets the others in *)
  else
    guard (fun () ->
      incr calls;
      if !calls mod 50 = 0 then Gc.compact ();
      (* some garbage, to give the GC work *)
      let l = List.init 100 (fun i -> String.make 10 (Char.chr (65 + i mod 26))) in
      ignore (Sys.opaque_identity l);
      Bytes.blit disk (Int64.to_int offset) buf 0 (Bytes.length buf))

let pwrite () data offset _ =
  guard (fun () ->
    Bytes.blit_string data 0 disk (Int64.to_int offset) (String.length data))

let () =
  NBDKit.register_plugin ~name:"threads"
    ~thread_model:(fun () -> NBDKit.Parallel)
    ~open_connection:(fun _ _ _ -> ())
    ~get_size:(fun () -> Int64.of_int (Bytes.length disk))
    ~export_description:(fun () -> Printf.sprintf "overlap=%d" !overlap)
    ~pread ~pwrite ()
''')

uri = t.start("threads", script, extra=("-t", "8"))

# Two sleeping reads on two connections overlap.
hs = [t.connect(uri) for _ in range(2)]
start = time.time()
ths = [threading.Thread(target=lambda h=h: h.pread(512, 0)) for h in hs]
for th in ths:
    th.start()
for th in ths:
    th.join()
elapsed = time.time() - start
assert 0.9 < elapsed < 1.8, "two 1 s sleeps took %.2f s" % elapsed

# Many clients, many requests each, on their own parts of the disk.
errors = []


def client(n):
    try:
        h = t.connect(uri, meta=False)
        base = 1024 * 1024 + n * 512 * 1024
        for i in range(40):
            data = bytes([(n * 7 + i) % 256]) * 4096 + os.urandom(4096)
            off = base + (i % 16) * 8192
            h.pwrite(data, off)
            got = h.pread(len(data), off)
            if got != data:
                errors.append("client %d: request %d read back wrong" % (n, i))
                return
        h.shutdown()
    except Exception as e:  # noqa: BLE001
        errors.append("client %d: %r" % (n, e))


ths = [threading.Thread(target=client, args=(n,)) for n in range(8)]
for th in ths:
    th.start()
for th in ths:
    th.join()
assert not errors, errors

h = t.connect(uri, full_info=True)
assert h.get_export_description() == "overlap=0", h.get_export_description()
print("PASS")
