#!/usr/bin/env bash
# file plugin on a sparse file: nbdinfo --map and qemu-img map report the
# holes and the data at the right offsets.
. "$(dirname "$0")/functions.sh"
requires nbdinfo
requires qemu-img

truncate -s 10M sparse.img
dd if=/dev/urandom of=sparse.img bs=1M seek=4 count=1 conv=notrunc status=none
# The temp filesystem must keep the file sparse.
alloc=$(( $(stat -c %b sparse.img) * $(stat -c %B sparse.img) ))
[ "$alloc" -lt $((4 << 20)) ] || skip "temp filesystem does not keep holes"

t "$NBDKIT" -U - file file=sparse.img --run 'nbdinfo --map --json "$uri"' > map.json
cat map.json
"$PYTHON" - <<'PY'
import json
m = json.load(open("map.json"))
M = 1 << 20
# Merge neighbours of the same type (servers may split extents).
ext = []
for e in m:
    if ext and ext[-1][2] == e["type"] and ext[-1][0] + ext[-1][1] == e["offset"]:
        ext[-1][1] += e["length"]
    else:
        ext.append([e["offset"], e["length"], e["type"]])
assert ext == [[0, 4 * M, 3], [4 * M, M, 0], [5 * M, 5 * M, 3]], ext
PY

# The same through qemu-img map on the nbd export.
start_nbdkit f file sparse.img
t qemu-img map --output=json -f raw "$uri" > qmap.json
cat qmap.json
"$PYTHON" - <<'PY'
import json
m = json.load(open("qmap.json"))
M = 1 << 20
ext = []
for e in m:
    d = e["data"]
    if ext and ext[-1][2] == d and ext[-1][0] + ext[-1][1] == e["start"]:
        ext[-1][1] += e["length"]
    else:
        ext.append([e["start"], e["length"], d])
assert ext == [[0, 4 * M, False], [4 * M, M, True], [5 * M, 5 * M, False]], ext
for e in m:
    if not e["data"]:
        assert e["zero"] is True, e
PY
echo "file-sparse: OK"
