#!/usr/bin/env bash
# cacheextents filter: the layer below is asked once for a walk over
# the disk one extent at a time, the cached answers are right (types
# and offsets, REQ_ONE honoured), and a write, trim or zero forgets them.
. "$(dirname "$0")/functions.sh"
requires nbdsh --version

# 4 extents of 1M: data, hole, zero, hole+zero; every call logged.
cat > plug.sh <<EOF2
#!/bin/bash
case "\$1" in
  get_size) echo 4M ;;
  can_extents|can_write|can_trim|can_zero) exit 0 ;;
  extents)
    echo "extents \$3 \$4" >> $tmpdir/calls
    for i in 0 1 2 3; do echo \$((i * 1048576)) 1048576 \$i; done ;;
  pread) dd if=/dev/zero count=\$3 iflag=count_bytes 2>/dev/null ;;
  pwrite) cat > /dev/null ;;
  trim|zero) ;;
  *) exit 2 ;;
esac
EOF2
chmod +x plug.sh
touch calls

start_nbdkit ce --filter=cacheextents sh ./plug.sh
t nbdsh --base-allocation -u "$uri" -c '
def walk(off=0, flags=nbd.CMD_FLAG_REQ_ONE):
    got = []
    def cb(ctx, o, ents, err):
        got.extend(zip(ents[0::2], ents[1::2]))
    h.block_status(4194304 - off, off, cb, flags)
    return got
# A walk one extent at a time, as qemu-img does.
off, seen = 0, []
while off < 4194304:
    e = walk(off)
    assert len(e) == 1, e
    seen.append((off,) + e[0])
    off += e[0][0]
assert seen == [(0, 1048576, 0), (1048576, 1048576, 1),
                (2097152, 1048576, 2), (3145728, 1048576, 3)], seen
# From the middle of an extent, without REQ_ONE: the rest of the list.
e = walk(1572864, 0)
assert e == [(524288, 1), (1048576, 2), (1048576, 3)], e
'
assert_eq "calls after the walk" "$(wc -l < calls)" 1

for op in "h.pwrite(b\"x\", 0)" "h.trim(4096, 0)" "h.zero(4096, 0)"; do
  : > calls
  t nbdsh --base-allocation -u "$uri" -c "
def cb(ctx, o, ents, err): pass
h.block_status(4096, 0, cb)
$op
h.block_status(4096, 0, cb)
h.block_status(4096, 8192, cb)
"
  # The first answer is kept from the connection before (the cache is
  # the server's); the change forgets it once.
  assert_eq "calls around $op" "$(wc -l < calls)" 1
done
echo "filter-cacheextents: OK"
