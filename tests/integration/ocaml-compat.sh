#!/usr/bin/env bash
# The OCaml host runs plugins written for nbdkit's own OCaml API:
# plugins/ocaml/memdisk.ml (pread returning a string, a magic config
# key, THREAD_MODEL_*, FuaNative, CacheNop, set_error then failwith)
# compiled from source and prebuilt as a .cmxs with -open NBDKit_compat.
. "$(dirname "$0")/functions.sh"
requires_ours
command -v ocamlfind >/dev/null || skip "ocamlfind is not installed"
requires nbdsh
requires nbdinfo
[ -f "$BUILDDIR/plugins/nbdkit-ocaml-plugin.so" ] ||
  fail "ocamlfind is here but the OCaml host is not built"
export XDG_CACHE_HOME="$tmpdir/cache"
script="$SRCDIR/plugins/ocaml/memdisk.ml"

# The bare value goes to the script's magic_config_key, size.
start_nbdkit md "$script" 2M
assert_eq size "$(t nbdinfo --size "$uri")" 2097152
nbdsh_u "$uri" -c '
h.pwrite(b"hello, world", 4090)
assert h.pread(12, 4090) == b"hello, world"
h.zero(4, 4092)
assert h.pread(6, 4090) == b"he" + bytes(4)
assert h.can_fua() and h.can_cache() and h.can_zero()
assert h.get_block_size(nbd.SIZE_PREFERRED) == 4096
h.cache(4096, 0)
'
# set_error then an exception: the client gets that errno.
URI="$sock" t nbdsh -c '
import errno, os
h.set_export_name("fail")
h.connect_unix(os.environ["URI"])
try:
    h.pread(512, 0)
    assert False, "pread succeeded"
except nbd.Error as e:
    assert e.errnum == errno.EPERM, e
' || fail "set_error did not reach the client"
stop_nbdkit "$pid"

# key=value works too; ro=true makes the export read-only.
start_nbdkit md2 ocaml "$script" size=64k ro=true
nbdsh_u "$uri" -c '
assert h.get_size() == 65536
assert h.is_read_only()
'
stop_nbdkit "$pid"

# --dump-plugin runs the script's load and dump_plugin.
out=$("$NBDKIT" ocaml "$script" --dump-plugin)
grep -qx "memdisk_loaded=true" <<<"$out" || fail "load did not run: $out"
grep -qx "memdisk_api=2" <<<"$out" || fail "api_version: $out"

# Prebuilt: compiled against NBDKit_compat by hand.
inc=$("$NBDKIT" ocaml --dump-plugin | sed -n 's/^ocaml_include=//p')
mkdir "$tmpdir/pre" && cp "$script" "$tmpdir/pre/"
(cd "$tmpdir/pre" &&
   ocamlfind ocamlopt -shared -package unix -I "$inc" -open NBDKit_compat \
     memdisk.ml -o memdisk.cmxs) || fail "building memdisk.cmxs failed"
start_nbdkit pre "$tmpdir/pre/memdisk.cmxs" 128k
nbdsh_u "$uri" -c '
assert h.get_size() == 131072
h.pwrite(b"x" * 100, 1000)
assert h.pread(102, 999) == b"\0" + b"x" * 100 + b"\0"
'
stop_nbdkit "$pid"

# A script wrong for both APIs: both compilers' messages are shown.
printf 'let () = NBDKit.register_plugin ~name:"x" ~nonsense:1 ()\n' \
  > "$tmpdir/bad.ml"
if "$NBDKIT" -U - ocaml "$tmpdir/bad.ml" --run true 2> "$tmpdir/err"; then
  fail "a script that does not compile was accepted"
fi
grep -q "does not compile" "$tmpdir/err" || fail "no message: $(cat "$tmpdir/err")"
grep -q "nbdkit's OCaml API" "$tmpdir/err" ||
  fail "no second message: $(cat "$tmpdir/err")"
note PASS
