#!/usr/bin/env bash
# plugins/ocaml/ramdisk.ml through real clients: nbdcopy writes 8 MiB
# of random data and reads it back, nbdinfo --map sees holes where
# nothing was written, nbdsh zeroes and trims.
. "$(dirname "$0")/functions.sh"
requires_ours
requires nbdcopy
requires nbdinfo
requires nbdsh
[ -f "$BUILDDIR/plugins/nbdkit-ocaml-plugin.so" ] || skip "OCaml host not built"
export XDG_CACHE_HOME="$tmpdir/cache"
script="$SRCDIR/plugins/ocaml/ramdisk.ml"

head -c 8M /dev/urandom > in.bin
start_nbdkit rd "$script" size=16M
t nbdcopy in.bin "$uri"
t nbdcopy "$uri" out.bin
assert_eq size "$(stat -c %s out.bin)" 16777216
cmp -n 8388608 in.bin out.bin || fail "data read back differs"
cmp -i 8388608:0 -n 8388608 out.bin /dev/zero || fail "tail is not zero"
t nbdinfo --map "$uri" > map.out
grep -Eq "^ *8388608 +8388608 +3 +hole,zero" map.out ||
  { cat map.out; fail "no hole after the data"; }
nbdsh_u "$uri" -c '
h.zero(65536 * 2, 65536)
h.trim(100, 5)
h.flush()
assert h.pread(65536 * 2, 65536) == bytes(65536 * 2)
assert h.pread(100, 5) == bytes(100)
assert h.can_multi_conn() and h.can_zero() and h.can_fua()
'
stop_nbdkit "$pid"
note PASS
