"""OCaml plugins' reads beyond plain data, through libnbd, for pread
(a bytes buffer) and pread_buf (a Bigarray over the server's buffer):
NBDKit.read_hole reaches the client as a hole chunk, read_lend sends a
Bigarray the script lent (kept alive by the host until sent, even with
no reference left in the script), read_error_at then an exception is a
partial read (the data chunk before the error), a range outside the
request is EINVAL, and the read functions outside pread raise
Invalid_argument."""

import errno
import os
import shutil
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import nbdtest  # noqa: E402
from nbdtest import nbd  # noqa: E402

nbdtest.require_ours()
if shutil.which("ocamlfind") is None:
    nbdtest.skip("ocamlfind is not installed")
BUILDDIR = os.environ.get("BUILDDIR", ".")
if not os.path.exists(os.path.join(BUILDDIR, "plugins",
                                   "nbdkit-ocaml-plugin.so")):
    raise AssertionError("ocamlfind is here but the OCaml host is not built")

t = nbdtest.Test()
os.environ["XDG_CACHE_HOME"] = t.path("cache")
K = 1024

BODY = r'''
let size =
  (* Not in a pread: Invalid_argument, which makes the disk 1M. *)
  try NBDKit.read_hole 0L 1L; 0L with Invalid_argument _ -> 1048576L

let fresh_lent () =
  let b = Bigarray.Array1.create Bigarray.char Bigarray.c_layout 4096 in
  Bigarray.Array1.fill b 'L';
  b

let read buf offset =
  match offset with
  | 0L ->
      fill buf 0 4096 'A';
      NBDKit.read_hole 4096L 61440L
  | 65536L ->
      (* Lent, then nothing in the script refers to it. *)
      NBDKit.read_lend 65536L (fresh_lent ());
      Gc.compact ();
      fill buf 4096 4096 'B'
  | 131072L ->
      fill buf 0 1000 'P';
      NBDKit.read_error_at 132072L;
      raise (NBDKit.Error (Unix.EIO, "half a read"))
  | 196608L -> NBDKit.read_hole 0L 10L
  | _ -> fill buf 0 (len buf) 'Z'

let () =
  NBDKit.register_plugin ~name:"reads"
    ~open_connection:(fun _ _ _ -> ())
    ~get_size:(fun () -> size)
    ~%s:(fun () buf offset _ -> read buf offset)
    ()
'''
VARIANTS = {
    "pread": r'''
let fill b pos n c = Bytes.fill b pos n c
let len = Bytes.length
''',
    "pread_buf": r'''
let fill b pos n c = Bigarray.Array1.fill (Bigarray.Array1.sub b pos n) c
let len = Bigarray.Array1.dim
''',
}


def chunks(h, count, offset):
    seen = []

    def cb(subbuf, off, status, error):
        seen.append((status, off, len(subbuf), bytes(subbuf)))
        return 0

    h.pread_structured(count, offset, cb)
    return seen


for cb_name, prelude in VARIANTS.items():
    script = t.path("reads_%s.ml" % cb_name)
    with open(script, "w") as f:
        f.write(prelude + BODY % cb_name)
    uri = t.start(cb_name, "ocaml", script)
    h = t.connect(uri)
    assert h.get_size() == 1 << 20, "read_hole outside pread did not raise"

    # A hole: the client sees zeroes, and libnbd a hole chunk.
    assert h.pread(64 * K, 0) == b"A" * 4096 + bytes(60 * K)
    seen = chunks(h, 64 * K, 0)
    assert (nbd.READ_HOLE, 4096, 60 * K, bytes(60 * K)) in seen, \
        (cb_name, [s[:3] for s in seen])
    assert [s for s in seen if s[0] == nbd.READ_DATA][0][3] == b"A" * 4096

    # A loan and data.
    for _ in range(3):
        assert h.pread(8 * K, 64 * K) == b"L" * 4096 + b"B" * 4096, cb_name

    # A partial read: data before the error, then the error.
    nbdtest.expect_error(lambda: h.pread(4096, 128 * K), errno.EIO,
                         cb_name + ": partial read")
    seen = []

    def cb(subbuf, off, status, error):
        seen.append((status, off, len(subbuf), bytes(subbuf)))
        return 0

    nbdtest.expect_error(lambda: h.pread_structured(4096, 128 * K, cb),
                         errno.EIO, cb_name + ": partial read, structured")
    data = [s for s in seen if s[0] == nbd.READ_DATA]
    assert data and data[0][1] == 128 * K and \
        b"".join(s[3] for s in data) == b"P" * 1000, (cb_name, seen)
    assert seen[-1][0] == nbd.READ_ERROR, seen

    # A hole outside the request is the script's mistake: EINVAL.
    nbdtest.expect_error(lambda: h.pread(4096, 192 * K), errno.EINVAL,
                         cb_name + ": hole outside the request")
    # The connection goes on.
    assert h.pread(10, 256 * K) == b"Z" * 10
    h.shutdown()
    t.handles.remove(h)
print("PASS")
