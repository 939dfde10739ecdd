#!/usr/bin/env bash
# extentlist filter: block status from a text list (any order, words or
# numbers for the type, gaps are hole+zero), from the JSON of
# `qemu-img map --output=json`, updated by writes, trims and zeroes;
# overlapping or malformed lists are refused naming the file.
. "$(dirname "$0")/functions.sh"
requires nbdsh --version
requires qemu-img --version

# map URI OFFSET COUNT: print "offset length type" lines from a walk.
cat > map.py <<'EOF2'
import sys, nbd
h = nbd.NBD()
h.add_meta_context("base:allocation")
h.connect_uri(sys.argv[1])
size = h.get_size()
off = 0
while off < size:
    got = []
    h.block_status(size - off, off,
                   lambda c, o, e, err: got.extend(zip(e[0::2], e[1::2])))
    for length, typ in got:
        length = min(length, size - off)
        print(off, length, typ)
        off += length
        if off >= size:
            break
EOF2
map () { t "$PYTHON" map.py "$1"; }

cat > list <<'EOF2'
# comments and blank lines are skipped

4M 1M   hole
0  1M
2M 512K 2
6M 1M   zero,hole
EOF2
start_nbdkit a --filter=extentlist memory 8M extentlist=list
assert_eq "text list" "$(map "$uri" | tr '\n' ';')" \
"0 1048576 0;1048576 1048576 3;2097152 524288 2;2621440 1572864 3;4194304 1048576 1;5242880 3145728 3;"

# Writes, trims and zeroes change the list (the plugin is writable).
nbdsh_u "$uri" -c '
h.pwrite(b"x" * 4096, 1048576)
h.trim(4096, 0)
h.zero(8192, 7340032)
h.zero(4096, 7348224, nbd.CMD_FLAG_NO_HOLE)
assert h.pread(4096, 1048576) == b"x" * 4096
'
assert_eq "after writes" "$(map "$uri" | tr '\n' ';')" \
"0 4096 1;4096 1048576 0;1052672 1044480 3;2097152 524288 2;2621440 1572864 3;4194304 1048576 1;5242880 2105344 3;7348224 4096 2;7352320 1036288 3;"
stop_nbdkit "$pid"

# JSON from qemu-img map of a sparse file: data at 64K..192K and 1M..1M+4K.
truncate -s 2M sparse.img
dd if=/dev/urandom of=sparse.img bs=64K seek=1 count=2 conv=notrunc 2>/dev/null
dd if=/dev/urandom of=sparse.img bs=4K seek=256 count=1 conv=notrunc 2>/dev/null
qemu-img map -f raw --output=json sparse.img > map.json
want=$(qemu-img map -f raw --output=json sparse.img |
  "$PYTHON" -c 'import json,sys
for e in json.load(sys.stdin):
    print(e["start"], e["length"], (0 if e["data"] else 1) | (2 if e["zero"] else 0))' |
  tr '\n' ';')
start_nbdkit j -r --filter=extentlist null 2M extentlist=map.json
assert_eq "qemu-img map json" "$(map "$uri" | tr '\n' ';')" "$want"
case "$want" in *"65536 131072 0;"*) ;; *) fail "unexpected qemu-img map: $want" ;; esac
stop_nbdkit "$pid"

# An empty list: all hole+zero.
: > empty
start_nbdkit e -r --filter=extentlist null 1M extentlist=empty
assert_eq "empty list" "$(map "$uri")" "0 1048576 3"
stop_nbdkit "$pid"

bad () # WHAT CONTENTS EXPECTED-MESSAGE
{
  printf "$2" > badlist
  if t "$NBDKIT" -U - --filter=extentlist null 1M extentlist=badlist \
       --run true 2>err; then
    fail "$1 accepted"
  fi
  grep -q "$3" err || fail "$1: message '$(cat err)' lacks '$3'"
}
bad overlap '0 1M\n512K 1M\n' 'overlap'
bad "bad type" '0 1M holey\n' 'badlist:1'
bad "one field" '0\n' 'badlist:1'
bad "broken json" '[{"start": 0, "length": ' 'qemu-img map'
echo "filter-extentlist: OK"
