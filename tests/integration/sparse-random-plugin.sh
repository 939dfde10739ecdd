#!/usr/bin/env bash
# sparse-random plugin: reproducible, sparse as asked, extents match
# the data, and a disk copied onto itself verifies.
. "$(dirname "$0")/functions.sh"
requires nbdcopy
requires nbdinfo

start_nbdkit s1 sparse-random size=64M seed=7 percent=25 runlength=1M
t nbdcopy "$uri" a.img
t nbdcopy "$uri" "$uri" || fail "copying the disk onto itself failed"
map=$(t nbdinfo --map --totals "$uri")
# percent=25: data is roughly a quarter of the disk.
pct=$(echo "$map" | awk '$4 == "data" {print int($2)}')
[ -n "$pct" ] && [ "$pct" -ge 10 ] && [ "$pct" -le 45 ] \
  || fail "data is ${pct}% of the disk: $map"
# Every hole reads as zeroes, every data extent is not zero.
t nbdinfo --map "$uri" > map.txt
while read -r off len type rest; do
  if [ "$type" = 3 ]; then
    cmp -n "$len" -i "$off:0" a.img /dev/zero || fail "hole at $off not zero"
  else
    if cmp -s -n "$len" -i "$off:0" a.img /dev/zero; then
      fail "data at $off is zero"
    fi
  fi
done < map.txt
t nbdsh --base-allocation -u "$uri" -c '
import errno
ext = []
h.block_status(64 << 20, 0, lambda c, o, e, err: ext.extend(e) or 0)
off = 0
for i in range(0, len(ext), 2):
    if ext[i + 1] == 0:
        d = h.pread(16, off)
        try:
            h.pwrite(bytes(16), off)
            assert False, "overwriting data with zeroes succeeded"
        except nbd.Error as e:
            assert e.errnum == errno.EIO, e
        break
    off += ext[i]
'
stop_nbdkit "$pid"
start_nbdkit s2 sparse-random 64M seed=7 percent=25 runlength=1M
t nbdcopy "$uri" b.img
cmp a.img b.img || fail "same seed, different disk"
stop_nbdkit "$pid"
echo "sparse-random-plugin: OK"
