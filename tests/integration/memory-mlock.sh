#!/usr/bin/env bash
# memory allocator=malloc,mlock=true (nbdkit's syntax): the disk is
# locked in RAM and works; bad options and allocators are refused with
# the value named; --dump-plugin says mlock=yes.
. "$(dirname "$0")/functions.sh"
requires nbdsh --version

if [ "$(ulimit -l)" != unlimited ] && [ "$(ulimit -l)" -lt 2048 ]; then
  skip "ulimit -l too low to lock 1M"
fi
out=$(t "$NBDKIT" -U - memory 1M allocator=malloc,mlock=true --run 'nbdsh -u "$uri" -c "
h.pwrite(b\"locked\", 4096)
print(h.pread(6, 4096).decode())
"') || fail "mlock=true"
assert_eq "read back" "$out" locked
t "$NBDKIT" -U - memory 1M allocator=malloc,mlock=false --run 'nbdinfo --size "$uri"' \
  > size.out || fail "mlock=false"
assert_eq size "$(cat size.out)" 1048576
for bad in malloc,mlock=maybe malloc,huge=1 zst; do
  if t "$NBDKIT" -U - memory 1M allocator=$bad --run true 2>err; then
    fail "allocator=$bad accepted"
  fi
  grep -q "allocator=$bad" err || fail "message does not name $bad: $(cat err)"
done
t "$NBDKIT" memory --dump-plugin | grep -qx mlock=yes || fail "no mlock=yes"
echo "memory-mlock: OK"
