#!/usr/bin/env bash
# file plugin parameters nbdkit documents: fd= (a file the parent
# opened; read-only if it was opened read-only), dirfd= (a directory
# the parent opened), directory= (dir='s other name), cache=none; and
# in directory mode exports are listed in directory order and the
# default export is refused.
. "$(dirname "$0")/functions.sh"
requires nbdsh --version
requires nbdinfo --version

truncate -s 16384 disk.img
exec 6<>disk.img
t "$NBDKIT" -U - file fd=6 --run 'nbdsh -u "$uri" -c "
assert not h.is_read_only()
assert h.get_size() == 16384
h.pwrite(b\"via fd\", 1000)
"' || fail "fd=6"
exec 6>&-
assert_eq "written through fd=" "$(dd if=disk.img bs=1 skip=1000 count=6 2>/dev/null)" "via fd"

exec 7<disk.img
t "$NBDKIT" -U - file fd=7 --run 'nbdsh -u "$uri" -c "
assert h.is_read_only()
assert h.pread(6, 1000) == b\"via fd\"
"' || fail "read-only fd=7"
exec 7<&-

if t "$NBDKIT" -U - file fd=42 --run true 2>err; then fail "fd=42 accepted"; fi
grep -q "fd=42" err || fail "message does not name fd=42: $(cat err)"

mkdir d
printf one > d/a
truncate -s 4096 d/a
printf two > d/b
truncate -s 8192 d/b
exec 8<d
for how in dirfd=8 directory=d; do
  t "$NBDKIT" -U - file $how --run '
    nbdinfo --size "nbd+unix:///b?socket=$unixsocket" > size.out
    nbdsh -u "nbd+unix:///a?socket=$unixsocket" -c "assert h.pread(3, 0) == b\"one\""
    nbdinfo --list --json "$uri" > list.json
    if nbdinfo --size "$uri" > /dev/null 2> default.err; then
      echo "default export served" >&2; exit 1
    fi
  ' || fail "$how"
  assert_eq "size of b ($how)" "$(cat size.out)" 8192
  want=$(find d -type f -printf '%f,' | sed 's/,$//')
  got=$("$PYTHON" -c 'import json; print(",".join(e["export-name"] for e in json.load(open("list.json"))["exports"]))')
  assert_eq "list order ($how)" "$got" "$want"
done
exec 8<&-

# cache=none: data still right.
t "$NBDKIT" -U - file disk.img cache=none --run 'nbdsh -u "$uri" -c "
h.pwrite(b\"x\" * 8192, 4096)
assert h.pread(8192, 4096) == b\"x\" * 8192
assert h.pread(6, 1000) == b\"via fd\"
"' || fail "cache=none"
if t "$NBDKIT" -U - file disk.img cache=sometimes --run true 2>/dev/null; then
  fail "cache=sometimes accepted"
fi
echo "file-fd: OK"
