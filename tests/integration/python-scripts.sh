#!/usr/bin/env bash
# The Python plugins shipped in plugins/python/, through real clients:
# ramdisk.py (nbdsh, nbdcopy, qemu-img), tar.py (a member read and
# written in place), ondemand.py (an image per export name, sized by
# the name, with a filesystem; list, zero, trim, exclusive use).
. "$(dirname "$0")/functions.sh"
requires_ours
requires nbdsh
requires nbdcopy
requires qemu-img
requires nbdinfo
py="$SRCDIR/plugins/python"

# ---- ramdisk.py
"$PYTHON" -c 'import os; open("rand.img","wb").write(os.urandom(3 << 20))'
t "$NBDKIT" -U - "$py/ramdisk.py" size=4M --run '
  nbdcopy rand.img "$uri" &&
  nbdcopy "$uri" back.img &&
  qemu-img compare -f raw -F raw "$uri" back.img >/dev/null &&
  nbdsh -u "$uri" -c "
assert h.get_size() == 4 << 20
assert h.can_multi_conn() and h.can_zero() and h.can_flush()
h.zero(4096, 8192)
assert h.pread(4096, 8192) == bytes(4096)
h.pwrite(b\"tail\", (4 << 20) - 4)
assert h.pread(4, (4 << 20) - 4) == b\"tail\"
"' || fail "ramdisk.py"
cmp -n $((3 << 20)) rand.img back.img || fail "ramdisk.py: data differ"
t "$NBDKIT" "$py/ramdisk.py" --help | grep -q "size=<SIZE>" || fail "ramdisk --help"

# ---- tar.py
mkdir tar && echo "a small file" > tar/readme
"$PYTHON" -c 'import os; open("tar/disk.img","wb").write(os.urandom(1 << 20))'
tar -C tar -cf t.tar readme disk.img
t "$NBDKIT" -U - "$py/tar.py" tar=t.tar member=disk.img --run '
  nbdcopy "$uri" out.img &&
  qemu-img info -f raw "$uri" | grep -q "virtual size: 1 MiB" &&
  nbdsh -u "$uri" -c "
h.pwrite(b\"written in place\", 4096, nbd.CMD_FLAG_FUA)
h.flush()
"' || fail "tar.py"
cmp out.img tar/disk.img || fail "tar.py: read data differ"
tar -xOf t.tar disk.img | dd bs=1 skip=4096 count=16 2>/dev/null > got
assert_eq "tar.py: in-place write" "$(cat got)" "written in place"
tar -xOf t.tar readme | grep -q "a small file" || fail "tar.py: neighbour changed"
t "$NBDKIT" -r -U - "$py/tar.py" tar=t.tar member=disk.img --run '
  nbdinfo "$uri"' | grep -q "is_read_only: true" || fail "tar.py -r"
if t "$NBDKIT" -U - "$py/tar.py" tar=t.tar member=nope --run true 2>err; then
  fail "tar.py: missing member accepted"
fi
grep -q "no member nope" err || fail "tar.py: message"

# ---- ondemand.py
mkdir od
start_nbdkit od "$py/ondemand.py" dir=od size=32M
base="nbd+unix://"
sq="?socket=$sock"
t nbdsh -u "$base/first$sq" -c '
assert h.get_size() == 32 << 20
# An ext4 superblock: magic 0xEF53 at 1024 + 56.
assert h.pread(2, 1024 + 56) == b"\x53\xef"
h.pwrite(b"keep me", 1 << 20)
h.flush()
' || fail "ondemand: first"
t nbdsh -u "$base/big:64M$sq" -c '
assert h.get_size() == 64 << 20
assert h.can_zero() and h.can_trim() and h.can_fast_zero()
h.pwrite(b"z" * 65536, 8 << 20)
h.zero(65536, 8 << 20)
assert h.pread(65536, 8 << 20) == bytes(65536)
h.pwrite(b"t" * 65536, 9 << 20)
h.trim(65536, 9 << 20)
h.zero(4096, 10 << 20, nbd.CMD_FLAG_FAST_ZERO)
' || fail "ondemand: big:64M"
# Kept between connections; listed; one client at a time.
t nbdsh -u "$base/first$sq" -c '
assert h.pread(7, 1 << 20) == b"keep me"
import nbd as n
other = n.NBD()
try:
    other.connect_uri(h.get_uri())
    raise AssertionError("a second client got in")
except n.Error:
    pass
' || fail "ondemand: reconnect"
t nbdinfo --list "$base/$sq" > list.out
grep -q 'export="first"' list.out && grep -q 'export="big"' list.out ||
  { cat list.out; fail "ondemand: list"; }
ls od/first.img od/big.img >/dev/null || fail "ondemand: images"
qemu-img info -f raw "$base/big$sq" | grep -q "virtual size: 64 MiB" ||
  fail "ondemand: qemu-img"
if t nbdinfo "$base/..%2Fescape$sq" >/dev/null 2>&1; then
  fail "ondemand: a name with / accepted"
fi
echo "python-scripts: OK"
