#!/usr/bin/env bash
# OCaml host: typed parameters a script declares with NBDKit.param are
# checked by the server (unknown keys, bad values, missing required
# keys refused, naming the key) and listed by --help; `nbdkit SCRIPT.ml`,
# `nbdkit ocaml SCRIPT.ml` and script= are the same; the compiled
# script is cached by content (a second start does not compile); a
# prebuilt .cmxs loads directly; a script that does not compile, raises
# at load or registers nothing is refused with a clear message.
. "$(dirname "$0")/functions.sh"
requires_ours
requires nbdinfo
[ -f "$BUILDDIR/plugins/nbdkit-ocaml-plugin.so" ] || skip "OCaml host not built"
requires ocamlfind ocamlopt -version
export XDG_CACHE_HOME="$tmpdir/cache"
cache="$XDG_CACHE_HOME/nbdkit-ocaml"

cat > p.ml <<'ML'
(* Parameter test plugin.

   It reports its parameters as the export description. *)
let size = NBDKit.param "size" NBDKit.Size ~required:true ~doc:"Size of the disk"
let mode = NBDKit.param "mode" (NBDKit.Enum ["a"; "b"]) ~default:"a"
             ~doc:"the mode"
let fast = NBDKit.param "fast" NBDKit.Bool ~doc:"go fast"

let () =
  NBDKit.register_plugin ~name:"ptest"
    ~open_connection:(fun _ _ _ -> ())
    ~get_size:(fun () -> NBDKit.get size)
    ~export_description:(fun () ->
      Printf.sprintf "%s:%Ld:%s" (NBDKit.get mode) (NBDKit.get size)
        (match NBDKit.get_opt fast with
         | None -> "unset" | Some b -> string_of_bool b))
    ~pread:(fun () buf _ _ -> Bytes.fill buf 0 (Bytes.length buf) '\000')
    ~dump_plugin:(fun () -> print_endline "ocaml_test_key=yes")
    ()
ML

desc () { t "$NBDKIT" -U - "$@" --run 'nbdinfo "$uri"' | sed -n 's/^\tdescription: //p'; }

# The first start compiles; later ones use the cache.
t "$NBDKIT" -v -U - ./p.ml size=2k --run true 2> first.err
grep -q "ocaml: compiling .*/p.ml into $cache/[0-9a-f]*\.cmxs" first.err ||
  { cat first.err; fail "no compile on the first start"; }
cmxs="$(ls "$cache"/*.cmxs)"
[ "$(echo "$cmxs" | wc -l)" = 1 ] || fail "expected one cached .cmxs: $cmxs"
[ -z "$(ls -d "$cache"/build-* 2>/dev/null)" ] || fail "build dir left behind"
mtime1="$(stat -c %Y.%y "$cmxs")"
sleep 1
t "$NBDKIT" -v -U - ./p.ml size=2k --run true 2> second.err
grep -q "using the cached $cmxs" second.err ||
  { cat second.err; fail "the second start did not use the cache"; }
if grep -q "ocaml: compiling" second.err; then fail "compiled again"; fi
assert_eq "cache mtime" "$(stat -c %Y.%y "$cmxs")" "$mtime1"

assert_eq plain "$(desc ./p.ml size=2k)" "a:2048:unset"
assert_eq host "$(desc ocaml ./p.ml size=1M mode=b fast=on)" "b:1048576:true"
assert_eq script-key "$(desc ocaml script=./p.ml size=1k fast=0)" "a:1024:false"

must_refuse ()
{
  local want="$1"; shift
  if t "$NBDKIT" -U - "$@" --run true > refuse.out 2>&1; then
    fail "started with $*"
  fi
  grep -qF -- "$want" refuse.out || { cat refuse.out; fail "$*: no '$want'"; }
}
must_refuse "unknown parameter 'colour'" ./p.ml size=1M colour=red
must_refuse "size=lots" ./p.ml size=lots
must_refuse "missing required parameter 'size'" ./p.ml
must_refuse "mode" ./p.ml size=1M mode=c
must_refuse "fast" ./p.ml size=1M fast=perhaps

t "$NBDKIT" ./p.ml --help > help.out
grep -q "^Parameter test plugin\.$" help.out || { cat help.out; fail "no doc"; }
grep -q "It reports its parameters" help.out || fail "doc body missing"
grep -q "size=<SIZE>.*(required) Size of the disk" help.out ||
  { cat help.out; fail "param help missing"; }
grep -q "mode=<a|b>.*the mode" help.out || { cat help.out; fail "enum help"; }
grep -q "fast=<BOOL>.*go fast" help.out || { cat help.out; fail "bool help"; }

t "$NBDKIT" ./p.ml --dump-plugin > dump.out
grep -q "^ocaml_version=4" dump.out || fail "no ocaml_version"
grep -q "^ocaml_script=.*/p.ml$" dump.out || fail "no ocaml_script"
grep -q "^ocaml_test_key=yes$" dump.out || fail "script dump_plugin missing"
grep -q "^thread_model=serialize_all_requests$" dump.out ||
  { cat dump.out; fail "default thread model"; }

# A prebuilt .cmxs, compiled against the NBDKit.cmi --dump-plugin
# names, loads without compiling.
inc="$(sed -n 's/^ocaml_include=//p' dump.out)"
mkdir pre && cp p.ml pre/prebuilt.ml
(cd pre && t ocamlfind ocamlopt -shared -package unix -I "$inc" prebuilt.ml \
   -o prebuilt.cmxs) || fail "cannot build the .cmxs"
rm -rf "$cache"
assert_eq cmxs "$(desc ./pre/prebuilt.cmxs size=4k mode=b)" "b:4096:unset"
t "$NBDKIT" -v -U - ocaml ./pre/prebuilt.cmxs size=4k --run true 2> pre.err
if grep -q "ocaml: compiling" pre.err; then fail "a .cmxs was compiled"; fi
[ ! -d "$cache" ] || [ -z "$(ls "$cache")" ] || fail "a .cmxs went to the cache"

# A script without parameters gets every key in config, unchecked.
cat > any.ml <<'ML'
let got = ref []
let () =
  NBDKit.register_plugin ~name:"any"
    ~config:(fun k v -> got := (k ^ "=" ^ v) :: !got)
    ~open_connection:(fun _ _ _ -> ())
    ~get_size:(fun () -> 512L)
    ~export_description:(fun () -> String.concat "," (List.rev !got))
    ~pread:(fun () buf _ _ -> Bytes.fill buf 0 (Bytes.length buf) '\000') ()
ML
assert_eq untyped "$(desc ./any.ml a=1 b=x)" "a=1,b=x"

# Compile errors: the compiler's message, naming the script and line.
printf 'let () =\n  NBDKit.register_plugin ~name:"x"\n    ~get_size:(fun () -> "big") ()\n' > bad.ml
must_refuse "bad.ml: the script does not compile" ./bad.ml
grep -q "File \"$tmpdir/bad.ml\", line 3" refuse.out ||
  { cat refuse.out; fail "compile error without file and line"; }
grep -q "Error: " refuse.out || fail "no compiler output"
printf 'let x = 1 +\n' > syntax.ml
must_refuse "Syntax error" ./syntax.ml
# Top-level exceptions, declarations refused, nothing registered.
printf 'let () = failwith "top level boom"\n' > boom.ml
must_refuse 'Failure("top level boom")' ./boom.ml
printf 'let _ = NBDKit.param "a b" NBDKit.Int\n' > baddecl.ml
must_refuse "bad parameter name" ./baddecl.ml
printf 'let x = 1\n' > noreg.ml
must_refuse "did not call NBDKit.register_plugin" ./noreg.ml
must_refuse "missing required parameter 'script'" ocaml
note PASS
