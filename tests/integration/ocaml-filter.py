"""OCaml filters: filters/ocaml/xor.ml over a file XORs every byte
written (the file holds data ^ key) and read (clients see the plain
bytes), zeroes become the key, with key 0 the holes of the plugin
reach the client (Next.pread_request), bad keys are refused naming
xorkey; an
OCaml filter over an OCaml plugin, and two OCaml filters stacked on it,
share one runtime; errors of the layer below reach the client with
their errno through a filter; a filter's preconnect can refuse
clients; a filter lists and renames the plugin's exports (next_open,
list_exports_below) and sees prepare and finalize; a filter reads
through a context of its own (next_context_open), closed once."""

import errno
import os
import re
import shutil
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import nbdtest  # noqa: E402
from nbdtest import nbd  # noqa: E402

nbdtest.require_ours()
if shutil.which("ocamlfind") is None:
    nbdtest.skip("ocamlfind is not installed")
BUILDDIR = os.environ.get("BUILDDIR", ".")
SRCDIR = os.environ.get("SRCDIR", ".")
NBDKIT = os.environ["NBDKIT"]
if not os.path.exists(os.path.join(BUILDDIR, "filters",
                                   "nbdkit-ocaml-filter.so")):
    raise AssertionError("ocamlfind is here but the OCaml filter is not built")

t = nbdtest.Test()
os.environ["XDG_CACHE_HOME"] = t.path("cache")
XOR = os.path.join(SRCDIR, "filters", "ocaml", "xor.ml")
RAMDISK = os.path.join(SRCDIR, "plugins", "ocaml", "ramdisk.ml")
KEY = 0x5A

# --- xor over the file plugin: the bytes on disk are XORed ---
disk = t.path("disk.img")
with open(disk, "wb") as f:
    f.truncate(1 << 20)
uri = t.start("xor", "--filter=" + XOR, "file", disk, "xorkey=%d" % KEY)
h = t.connect(uri)
data = os.urandom(65536)
h.pwrite(data, 4096)
assert h.pread(65536, 4096) == data, "read back through xor differs"
h.flush()
with open(disk, "rb") as f:
    raw = f.read()
assert raw[4096:4096 + 65536] == bytes(b ^ KEY for b in data), \
    "the file does not hold the XORed bytes"
# Untouched zeroes below read as the key.
assert h.pread(16, 0) == bytes([KEY]) * 16
# Zeroing through the filter stores the key, so it reads back as 0.
h.zero(8192, 4096)
assert h.pread(8192, 4096) == bytes(8192)
with open(disk, "rb") as f:
    f.seek(4096)
    assert f.read(8192) == bytes([KEY]) * 8192, "zero did not store the key"
# Holes below are not holes above: every extent is data.
ext = nbdtest.check_extents(h, 0, 1 << 20)
assert all(e[2] == 0 for e in ext), ext
h.shutdown()
t.handles.remove(h)

# nbdcopy through the filter, a whole disk.
src = t.path("src.bin")
with open(src, "wb") as f:
    f.write(os.urandom(1 << 20))
if shutil.which("nbdcopy"):
    subprocess.run(["nbdcopy", src, uri], check=True, timeout=30)
    with open(disk, "rb") as f:
        raw = f.read()
    with open(src, "rb") as f:
        want = f.read()
    assert raw == bytes(b ^ KEY for b in want), "nbdcopy: not XORed on disk"
    out = t.path("out.bin")
    subprocess.run(["nbdcopy", uri, out], check=True, timeout=30)
    with open(out, "rb") as f:
        assert f.read() == want, "nbdcopy: read back differs"

# --- key 0: reads pass through Next.pread_request, holes included ---
uri = t.start("xor0", "--filter=" + XOR, "memory", "1M")
h = t.connect(uri)
h.pwrite(b"data" * 1024, 0)
assert h.pread(4096, 0) == b"data" * 1024
seen = []


def chunk(subbuf, offset, status, error):
    seen.append((status, offset, len(subbuf)))
    return 0


h.pread_structured(64 * 1024, 0, chunk)
# The memory plugin answers in pages: data first, then a hole.
assert seen[0][:2] == (nbd.READ_DATA, 0) and \
    any(c[0] == nbd.READ_HOLE for c in seen), seen
h.shutdown()
t.handles.remove(h)

# --- bad keys are refused, naming the key ---
for bad in ("300", "-1", "abc"):
    p = subprocess.run([NBDKIT, "-U", t.path("bad.sock"), "--filter=" + XOR,
                        "memory", "1M", "xorkey=" + bad, "--run", "true"],
                       stderr=subprocess.PIPE, timeout=30)
    err = p.stderr.decode()
    assert p.returncode != 0, "xorkey=%s was accepted" % bad
    assert "xorkey" in err, err

# --- two OCaml filters over an OCaml plugin, in one runtime ---
half = t.path("half.ml")
with open(half, "w") as f:
    f.write(r'''
(* The first half of the disk below, and a failing region. *)
let first = ref None
let get_size next () =
  if !first = None then first := Some next;
  Int64.div (NBDKit.Next.get_size next) 2L
let pwrite next () data offset flags =
  if offset = 12345L then raise (NBDKit.Error (Unix.ENOSPC, "no room here"));
  NBDKit.Next.pwrite next data offset flags
let () =
  NBDKit.register_filter ~name:"half"
    ~preconnect:(fun ro ->
      if ro then raise (NBDKit.Error (Unix.EPERM, "no read-only servers")))
    ~open_connection:(fun _ _ _ -> ())
    ~get_size ~pwrite
    ~export_description:(fun next () ->
      (* The first connection's next, used in another connection's
         callback, is refused. *)
      let r =
        match !first with
        | None -> "none"
        | Some n ->
            (try ignore (NBDKit.Next.get_size n); "used"
             with Invalid_argument _ -> "refused")
      in
      let bs = NBDKit.Next.block_size next in
      match NBDKit.Next.export_description next with
      | Some d ->
          Printf.sprintf "half of %s, %s, %d" d r bs.NBDKit.preferred
      | None -> "half")
    ()
''')
buggy = t.path("buggy.ml")
with open(buggy, "w") as f:
    f.write(r'''
(* An OCaml plugin that refuses writes at 65536 with EPERM. *)
let disk = Bytes.make (1 lsl 20) '\000'
let () =
  NBDKit.register_plugin ~name:"buggy"
    ~open_connection:(fun _ _ _ -> ())
    ~get_size:(fun () -> Int64.of_int (Bytes.length disk))
    ~export_description:(fun () -> "buggy disk")
    ~block_size:(fun () _ ->
      { NBDKit.minimum = 1; preferred = 8192; maximum = 65536;
        maximum_virtual = 0L })
    ~pread:(fun () buf off _ ->
      Bytes.blit disk (Int64.to_int off) buf 0 (Bytes.length buf))
    ~pwrite:(fun () s off _ ->
      if off = 65536L then raise (NBDKit.Error (Unix.EPERM, "read-only here"));
      Bytes.blit_string s 0 disk (Int64.to_int off) (String.length s))
    ()
''')
uri = t.start("stack", "--filter=" + XOR, "--filter=" + half,
              "ocaml", buggy, "xorkey=7")
h = t.connect(uri)
assert h.get_size() == 1 << 19
h.pwrite(b"abc", 100)
assert h.pread(3, 100) == b"abc"
assert h.pread(2, 0) == b"\x07\x07"
e = nbdtest.expect_error(lambda: h.pwrite(b"x" * 512, 65536), errno.EPERM,
                         "plugin error through two filters")
e = nbdtest.expect_error(lambda: h.pwrite(b"x", 12345), errno.ENOSPC,
                         "filter error")
# A second connection while the first is open.
h = nbd.NBD()
h.set_full_info(True)
h.connect_uri(uri)
t.handles.append(h)
assert h.get_export_description() == "half of buggy disk, refused, 8192", \
    h.get_export_description()

# The filter's preconnect refuses clients of a read-only server.
uri = t.start("stack-ro", "-r", "--filter=" + half, "ocaml", buggy)
try:
    t.connect(uri)
    raise AssertionError("preconnect did not refuse the client")
except nbd.Error:
    pass

# Exports: a filter renames "outer" to the plugin's "inner" (next_open),
# lists the plugin's exports through list_exports_below, and counts
# prepare and finalize.
named = t.path("named.ml")
with open(named, "w") as f:
    f.write(r'''
let () =
  NBDKit.register_plugin ~name:"named"
    ~list_exports:(fun _ _ ->
      [ { NBDKit.name = "inner"; description = Some "the inner one" };
        { NBDKit.name = "other"; description = None } ])
    ~default_export:(fun _ _ -> "other")
    ~open_connection:(fun _ name _ -> name)
    ~get_size:(fun _ -> 4096L)
    ~export_description:(fun name -> "plugin sees " ^ name)
    ~pread:(fun _ buf _ _ -> Bytes.fill buf 0 (Bytes.length buf) 'n')
    ()
''')
rename = t.path("rename.ml")
with open(rename, "w") as f:
    f.write(r'''
let prepared = ref 0 and finalized = ref 0
let () =
  NBDKit.register_filter ~name:"rename"
    ~list_exports:(fun ro tls ->
      List.map (fun (e : NBDKit.export) ->
          if e.name = "inner" then { e with name = "outer" } else e)
        (NBDKit.list_exports_below ro tls))
    ~default_export:(fun ro tls ->
      "below:" ^ NBDKit.default_export_below ro tls)
    ~open_connection:(fun ro name _ ->
      if name = "outer" then NBDKit.next_open ro "inner")
    ~prepare:(fun _ () _ -> incr prepared)
    ~finalize:(fun _ () -> incr finalized)
    ~export_description:(fun next () ->
      Printf.sprintf "%s; %d prepared, %d finalized"
        (Option.value ~default:"" (NBDKit.Next.export_description next))
        !prepared !finalized)
    ()
''')
uri = t.start("exports", "--filter=" + rename, "ocaml", named)
h = nbd.NBD()
h.set_opt_mode(True)
h.connect_unix(t.sock)
names = []
h.opt_list(lambda name, desc: names.append((name, desc)) or 0)
assert names == [("outer", "the inner one"), ("other", "")], names
h.opt_abort()


def description(export):
    h = nbd.NBD()
    h.set_full_info(True)
    h.set_export_name(export)
    h.connect_unix(t.sock)
    d = h.get_export_description()
    assert h.pread(2, 0) == b"nn"
    h.shutdown()
    return d


d = description("outer")
assert d.startswith("plugin sees inner; 1 prepared, "), d
d = description("other")
assert d.startswith("plugin sees other; 2 prepared, "), d
# Finalize runs as each client leaves: wait for the first two.
deadline = time.time() + 10
while not re.search(r"prepared, ([2-9]|\d\d+) finalized", d):
    assert time.time() < deadline, d
    time.sleep(0.1)
    d = description("other")

# A context of the filter's own, shared by every client: reads go
# through it; an export named "close" closes it (twice: refused).
shared = t.path("shared.ml")
with open(shared, "w") as f:
    f.write(r'''
let ctx = ref None
let reads = ref 0
let open_connection _ name _ =
  if !ctx = None then ctx := Some (NBDKit.next_context_open false "");
  name
let pread _next _name buf offset flags =
  match !ctx with
  | Some c -> incr reads; NBDKit.Next.pread c buf offset flags
  | None -> raise (NBDKit.Error (Unix.EIO, "no context"))
let export_description _next name =
  if name <> "close" then Printf.sprintf "%d reads" !reads
  else
    match !ctx with
    | None -> "none"
    | Some c ->
        NBDKit.next_context_close c;
        ctx := None;
        (try NBDKit.next_context_close c; "closed twice"
         with Invalid_argument _ -> "closed once")
let () =
  NBDKit.register_filter ~name:"shared" ~open_connection ~pread
    ~export_description ()
''')
uri = t.start("shared", "--filter=" + shared, "memory", "1M")
h = t.connect(uri)
h.pwrite(b"through next", 1000)
assert h.pread(12, 1000) == b"through next"
h2 = t.connect(uri)
assert h2.pread(12, 1000) == b"through next"
for export, want in (("", "2 reads"), ("close", "closed once")):
    h3 = nbd.NBD()
    h3.set_full_info(True)
    h3.set_export_name(export)
    h3.connect_unix(t.sock)
    assert h3.get_export_description() == want, h3.get_export_description()
    h3.shutdown()

# Through an OCaml filter, four reads, each sleeping 1 s in a parallel
# OCaml plugin below, overlap: the host's lock is not held across the
# layers while a request waits.
slow = t.path("slow.ml")
with open(slow, "w") as f:
    f.write(r'''
let () =
  NBDKit.register_plugin ~name:"slow"
    ~thread_model:(fun () -> NBDKit.Parallel)
    ~open_connection:(fun _ _ _ -> ())
    ~get_size:(fun () -> 1048576L)
    ~pread:(fun () buf _ _ ->
      NBDKit.nanosleep 1 0; Bytes.fill buf 0 (Bytes.length buf) 's')
    ()
''')
# With key 0 (Next.pread_request) and key 3 (Next.pread).
for key, byte in ((0, b"s"), (3, b"p")):
    uri = t.start("slow%d" % key, "--filter=" + XOR, "ocaml", slow,
                  "xorkey=%d" % key)
    h = t.connect(uri)
    start = time.time()
    bufs = [nbd.Buffer(512) for _ in range(4)]
    for i, b in enumerate(bufs):
        h.aio_pread(b, i * 4096)
    while h.aio_in_flight() > 0:
        h.poll(-1)
    elapsed = time.time() - start
    assert all(b.to_bytearray() == byte * 512 for b in bufs)
    assert elapsed < 3, "reads did not overlap: %.1f s" % elapsed
    h.shutdown()
    t.handles.remove(h)

# Over the sh plugin, which forks for every call from any thread: the
# forks (and the scripts they run, unload last) survive the OCaml
# runtime in the same process.
if os.path.exists(os.path.join(BUILDDIR, "plugins", "nbdkit-sh-plugin.so")):
    sh = t.path("disk.sh")
    with open(sh, "w") as f:
        f.write('''#!/bin/bash
case "$1" in
  get_size) echo 1048576 ;;
  thread_model) echo parallel ;;
  pread) head -c "$3" /dev/zero ;;
  *) exit 2 ;;
esac
''')
    os.chmod(sh, 0o755)
    p = subprocess.run([NBDKIT, "-U", "-", "--filter=" + XOR, "sh", sh,
                        "xorkey=3", "--run",
                        "nbdsh -u \"$uri\" -c 'assert h.pread(8, 0) == "
                        "b\"\\x03\" * 8'"],
                       stderr=subprocess.PIPE, timeout=30)
    err = p.stderr.decode()
    assert p.returncode == 0 and "signal" not in err, err

# xor.ml over plugins/ocaml/ramdisk.ml.
uri = t.start("rd", "--filter=" + XOR, "ocaml", RAMDISK, "size=1M",
              "xorkey=255")
h = t.connect(uri)
h.pwrite(b"\x00\xff\x0f", 0)
assert h.pread(4, 0) == b"\x00\xff\x0f\xff"
print("PASS")
