#!/usr/bin/env bash
# The nbdkit_* helpers from OCaml (parse_int, parse_size, parse_bool,
# read_password, absolute_path, realpath, peer_name, peer_uid,
# export_name, is_tls, abi, debug, set_error, shutdown), and exception
# backtraces logged by default, naming the script's file and lines.
. "$(dirname "$0")/functions.sh"
requires_ours
command -v ocamlfind >/dev/null || skip "ocamlfind is not installed"
requires nbdsh
[ -f "$BUILDDIR/plugins/nbdkit-ocaml-plugin.so" ] ||
  fail "ocamlfind is here but the OCaml host is not built"
export XDG_CACHE_HOME="$tmpdir/cache"
printf 'sesame\n' > "$tmpdir/pw"
mkdir "$tmpdir/d"
cat > "$tmpdir/helpers.ml" <<'ML'
(* Answers the helpers' results as the export description. *)
let bad f = try ignore (f ()); "ok?" with NBDKit.Error (Unix.EINVAL, _) -> "EINVAL"

let describe () =
  let peer =
    match NBDKit.peer_name () with
    | Unix.ADDR_UNIX _ -> "unix"
    | Unix.ADDR_INET _ -> "inet"
  in
  String.concat " "
    [ Int64.to_string (NBDKit.parse_int "n" "0x10");
      Int64.to_string (NBDKit.parse_int "n" "-42");
      bad (fun () -> NBDKit.parse_int "n" "12x");
      Int64.to_string (NBDKit.parse_size "4k");
      string_of_bool (NBDKit.parse_bool "on");
      bad (fun () -> NBDKit.parse_bool "maybe");
      NBDKit.read_password ("+" ^ Sys.getenv "PWFILE");
      Filename.basename (NBDKit.absolute_path "rel");
      Filename.basename (NBDKit.realpath (Sys.getenv "DDIR" ^ "/../d"));
      peer;
      Int64.to_string (NBDKit.peer_uid ());
      NBDKit.export_name ();
      string_of_bool (NBDKit.is_tls ());
      string_of_int (NBDKit.abi "FLAG_FUA");
      string_of_int (NBDKit.abi "THREAD_MODEL_PARALLEL") ]

let rec deep n = if n = 0 then failwith "deep down" else 1 + deep (n - 1)

let pread () buf offset _ =
  match offset with
  | 0L -> NBDKit.debug "helpers: debug from pread"; Bytes.fill buf 0 (Bytes.length buf) 'x'
  | 512L -> ignore (deep 3)
  | 1024L -> NBDKit.set_error Unix.ENOSPC; ignore (deep 1)
  | _ -> NBDKit.shutdown (); Bytes.fill buf 0 (Bytes.length buf) 'y'

let () =
  NBDKit.register_plugin ~name:"helpers"
    ~open_connection:(fun _ _ _ -> ())
    ~get_size:(fun () -> 4096L)
    ~export_description:(fun () -> describe ())
    ~pread ()
ML
PWFILE="$tmpdir/pw" DDIR="$tmpdir/d" \
"$NBDKIT" -v -U - "$tmpdir/helpers.ml" --run '
nbdsh -c "
import errno, os
h.set_full_info(True)
h.set_export_name(\"myexport\")
h.connect_unix(os.environ[\"unixsocket\"])
d = h.get_export_description().split()
want = [\"16\", \"-42\", \"EINVAL\", \"4096\", \"true\", \"EINVAL\", \"sesame\",
        \"rel\", \"d\", \"unix\", str(os.getuid()), \"myexport\", \"false\",
        \"2\", \"4000\"]
assert d == want, d
assert h.pread(512, 0) == b\"x\" * 512
for off, err in ((512, errno.EIO), (1024, errno.ENOSPC)):
    try:
        h.pread(512, off)
        assert False, off
    except nbd.Error as e:
        assert e.errnum == err, (off, e)
"' > "$tmpdir/out" 2> "$tmpdir/err" || { cat "$tmpdir/out" "$tmpdir/err"; fail "helpers"; }
grep -q "helpers: debug from pread" "$tmpdir/err" || fail "no debug line"
grep -q 'pread: Failure("deep down")' "$tmpdir/err" || fail "no exception"
# The backtrace, without OCAMLRUNPARAM or Printexc.record_backtrace.
grep -q "Called from .*helpers.ml\", line 3[0-9]" "$tmpdir/err" ||
  { cat "$tmpdir/err"; fail "no backtrace naming the script's lines"; }

# NBDKit.shutdown: the server exits by itself.
PWFILE="$tmpdir/pw" DDIR="$tmpdir/d" start_nbdkit sd "$tmpdir/helpers.ml"
nbdsh_u "$uri" -c 'assert h.pread(512, 2048) == b"y" * 512'
for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
kill -0 "$pid" 2>/dev/null && fail "NBDKit.shutdown did not stop the server"
note PASS
