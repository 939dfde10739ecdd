"""OCaml host, plugins: every callback of a script reaches clients as it
should through libnbd: typed parameters become OCaml values, open sees
the export name, pread fills a bytes buffer, pwrite gets a string,
zero/trim/flush and FUA arrive with their flags, extents and exports
come from lists, capabilities from booleans and variants, and
exceptions reach the client as errnos: NBDKit.Error and Unix_error
with their errno, anything else as EIO (or NBDKit.set_error's)."""

import errno
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import nbdtest  # noqa: E402
from nbdtest import nbd  # noqa: E402

nbdtest.require_ours()
BUILDDIR = os.environ.get("BUILDDIR", ".")
if not os.path.exists(os.path.join(BUILDDIR, "plugins",
                                   "nbdkit-ocaml-plugin.so")):
    nbdtest.skip("the OCaml host is not built")

t = nbdtest.Test()
os.environ["XDG_CACHE_HOME"] = t.path("cache")
script = t.path("p.ml")
with open(script, "w") as f:
    f.write(r'''
(* A plugin exercising the OCaml host. *)
open NBDKit

let size = param "size" Size ~required:true ~doc:"disk size"
let mode = param "mode" (Enum ["a"; "b"]) ~default:"a"
let ro = param "ro" Bool ~default:false
let count = param "count" Int ~default:7L
let tag = param "tag" List
let seen = ref []
(* Str and the threads library are linked into the host. *)
let lock = Mutex.create ()
let config key value =
  Mutex.lock lock;
  (match Str.bounded_split (Str.regexp "=") (key ^ "=" ^ value) 2 with
   | [k; v] -> seen := (k ^ "=" ^ v) :: !seen
   | _ -> failwith "split");
  Mutex.unlock lock

let disk = Bytes.make (1024 * 1024) '\000'
let fua_writes = ref 0
let flushes = ref 0

type h = { export : string; tls : bool }

let export_description h =
  String.concat "|"
    [ h.export; get mode; string_of_bool (get ro); Int64.to_string (get count);
      String.concat "," (get tag); String.concat " " (List.rev !seen);
      string_of_int !fua_writes; string_of_int !flushes;
      Int64.to_string (get size) ]

let pread _h buf offset _flags =
  match offset with
  | 131072L -> raise (Error (Unix.ENOSPC, "no space for reading"))
  | 131584L -> raise (Unix.Unix_error (Unix.EROFS, "open", "secret"))
  | 132096L -> failwith "a bug"
  | 132608L -> set_error Unix.EPERM; failwith "plain failure after set_error"
  | 133120L -> raise (Error (Unix.EUNKNOWNERR 122, "quota"))
  | _ ->
      Bytes.blit disk (Int64.to_int offset) buf 0 (Bytes.length buf)

let pwrite _h data offset flags =
  if List.mem FUA flags then incr fua_writes;
  Bytes.blit_string data 0 disk (Int64.to_int offset) (String.length data)

let zero _h count offset flags =
  if List.mem Fast_zero flags then raise (Error (Unix.EOPNOTSUPP, "not fast"));
  Bytes.fill disk (Int64.to_int offset) (Int64.to_int count) '\000'

let extents _h count offset _flags =
  [ { offset; length = 4096L; is_hole = false; is_zero = false };
    { offset = Int64.add offset 4096L; length = count;
      is_hole = true; is_zero = true } ]

let () =
  register_plugin ~name:"ptest" ~config
    ~config_complete:(fun () -> assert (get size = 1048576L))
    ~open_connection:(fun _ro export tls -> { export; tls })
    ~get_size:(fun _ -> get size)
    ~export_description
    ~list_exports:(fun _ _ ->
      [ { name = "one"; description = None };
        { name = "two"; description = Some "the second" } ])
    ~default_export:(fun _ _ -> "one")
    ~can_write:(fun _ -> true) ~can_flush:(fun _ -> true)
    ~can_trim:(fun _ -> true) ~can_zero:(fun _ -> Zero_native)
    ~can_fua:(fun _ -> Fua_native) ~can_multi_conn:(fun _ -> true)
    ~can_fast_zero:(fun _ -> true)
    ~can_extents:(fun _ -> Extents_native) ~can_cache:(fun _ -> Cache_emulate)
    ~block_size:(fun _ _ ->
      { minimum = 1; preferred = 4096; maximum = 1048576;
        maximum_virtual = 1048576L })
    ~pread ~pwrite ~zero ~trim:zero ~extents
    ~flush:(fun _ _ -> incr flushes)
    ()
''')

uri = t.start("ocaml", script, "size=1M", "ro=yes", "count=0x10", "tag=x",
              "tag=y")
h = t.connect(uri.replace(":///?", ":///two?"), full_info=True)

def desc():
    """The description of a new connection (it is asked once per
    connection): the script's counters as they are now."""
    h4 = t.connect(uri, full_info=True)
    d = h4.get_export_description().split("|")
    h4.shutdown()
    return d

# Parameters: converted values, defaults applied, lists kept; config
# sees every value in canonical form.
parts = h.get_export_description().split("|")
assert parts[:5] == ["two", "a", "true", "16", "x,y"], parts
for want in ["size=1048576", "ro=1", "count=16", "tag=x", "tag=y", "mode=a"]:
    assert want in parts[5].split(" "), (want, parts[5])
assert parts[8] == "1048576", parts

assert h.get_size() == 1048576
assert h.can_flush() and h.can_trim() and h.can_zero() and h.can_fua()
assert h.can_multi_conn() and h.can_cache() and h.can_fast_zero()
assert not h.is_read_only()
assert h.get_block_size(nbd.SIZE_PREFERRED) == 4096
assert h.get_block_size(nbd.SIZE_MAXIMUM) == 1048576

# Data: bytes out, strings in; zero, trim, flush, FUA.
h.pwrite(b"hello world", 1000, nbd.CMD_FLAG_FUA)
assert h.pread(11, 1000) == b"hello world"
assert desc()[6] == "1", "FUA flag not seen"
h.zero(5, 1000)
assert h.pread(11, 1000) == b"\0" * 5 + b" world"
h.trim(6, 1005)
assert h.pread(11, 1000) == bytes(11)
h.flush()
assert desc()[7] == "1", "flush not called"
nbdtest.expect_error(lambda: h.zero(512, 0, nbd.CMD_FLAG_FAST_ZERO),
                     errno.ENOTSUP, "fast zero")
big = os.urandom(256 * 1024)
h.pwrite(big, 512 * 1024)
assert h.pread(len(big), 512 * 1024) == big

# Errors: the errno given, else EIO.
nbdtest.expect_error(lambda: h.pread(512, 131072), errno.ENOSPC, "Error")
# (EROFS travels as NBD_EPERM, EDQUOT as NBD_ENOSPC.)
nbdtest.expect_error(lambda: h.pread(512, 131584), errno.EPERM,
                     "Unix_error")
nbdtest.expect_error(lambda: h.pread(512, 132096), errno.EIO, "Failure")
nbdtest.expect_error(lambda: h.pread(512, 132608), errno.EPERM, "set_error")
nbdtest.expect_error(lambda: h.pread(512, 133120), errno.ENOSPC,
                     "EUNKNOWNERR")
# The connection survives errors.
assert h.pread(4, 1000) == bytes(4)

# Extents from a list.
ext = nbdtest.check_extents(h, 0, 65536)
assert ext[0] == (0, 4096, 0), ext
assert ext[1][2] == 3, ext

# Exports: listed; the default one is "one".
h2 = nbd.NBD()
h2.set_opt_mode(True)
h2.connect_uri(uri)
names = []
h2.opt_list(lambda name, d: names.append((name, d)))
assert ("one", "") in names and ("two", "the second") in names, names
h2.opt_abort()
h3 = t.connect(uri, full_info=True)
assert h3.get_export_description().startswith("one|"), \
    h3.get_export_description()
print("PASS")
