#!/usr/bin/env bash
# plugins/lua/ramdisk.lua: a RAM disk in Lua keeps what is written
# (checked with nbdcopy both ways and nbdsh), shares it between
# clients, reads untouched areas as zeroes and reports them as holes.
. "$(dirname "$0")/functions.sh"
requires_ours
requires nbdcopy
requires nbdsh
[ -f "$BUILDDIR/plugins/nbdkit-lua-plugin.so" ] || skip "Lua host not built"
RD="$SRCDIR/plugins/lua/ramdisk.lua"

start_nbdkit rd "$RD" size=4M
head -c 1000000 /dev/urandom > in.img
t nbdcopy in.img "$uri"
t nbdcopy "$uri" out.img
cmp -n 1000000 in.img out.img || fail "data differs"
[ "$(stat -c %s out.img)" = 4194304 ] || fail "size"
cmp <(tail -c +1000001 out.img) <(head -c 3194304 /dev/zero) ||
  fail "tail not zero"

# Another client sees the data; holes and zeroing.
got="$(t nbdsh --base-allocation -u "$uri" -c '
import nbd
assert h.pread(4, 0) == open("in.img", "rb").read(4)
ext = []
h.block_status(4194304, 0, lambda m, o, e, err: ext.extend(e))
print(ext[0] >= 983040, ext[1], ext[-1] & 3)
h.zero(65536, 0)
print(bytes(h.pread(4, 0)) == bytes(4))
h.pwrite(b"abc", 65535)
print(bytes(h.pread(3, 65535)).decode())
')"
assert_eq nbdsh "$got" "True 0 3
True
abc"
note PASS
