#!/usr/bin/env bash
# ddrescue filter: only blocks a GNU ddrescue mapfile marks '+' read;
# every other status, and bytes the map does not list, fail with EIO;
# the export is read-only; a malformed map is refused naming the line.
. "$(dirname "$0")/functions.sh"
requires nbdsh --version

"$PYTHON" -c 'import sys; sys.stdout.buffer.write(bytes(range(256)) * 64)' > disk.img
cat > disk.map <<'EOF2'
# Mapfile. Created by GNU ddrescue version 1.27
# current_pos  current_status  current_pass
0x00001000     +               1
#      pos        size  status
0x00000000  0x00000800  +
0x00000800  0x00000200  -
0x00000A00  0x00000200  ?
0x00000C00  0x00000200  *
0x00000E00  0x00000200  /
0x00001000  0x00001000  +
0x00002000  0x00000400  +
EOF2
t "$NBDKIT" -U - --filter=ddrescue file disk.img ddrescue-mapfile=disk.map \
  --run "nbdsh -u \"\$uri\" -c '
data = bytes(range(256)) * 64
assert h.is_read_only()
assert h.pread(2048, 0) == data[:2048]
# Two touching + blocks read as one.
assert h.pread(5120, 4096) == data[4096:9216]
def bad(off, n):
    try:
        h.pread(n, off)
    except nbd.Error as e:
        assert e.errno == \"EIO\", (off, e.errno)
        return
    assert False, \"read at %d succeeded\" % off
for off in (2048, 2560, 3072, 3584):     # - ? * /
    bad(off, 512)
bad(2047, 2)                             # straddles good and bad
bad(9216, 512)                           # not in the map
bad(16384 - 1, 1)
try:
    h.pwrite(b\"x\", 0)
    assert False, \"write succeeded\"
except nbd.Error:
    pass
'" || fail "reads through the map"

# A map with no block: nothing reads.
printf '# nothing yet\n0x0 ?  1\n' > empty.map
t "$NBDKIT" -U - --filter=ddrescue file disk.img ddrescue-mapfile=empty.map \
  --run "nbdsh -u \"\$uri\" -c '
try:
    h.pread(1, 0)
    assert False, \"read succeeded\"
except nbd.Error as e:
    assert e.errno == \"EIO\"
'" || fail "empty map"

printf '0x0 +\n0x0 0x200 +\n0x200 0x200 X\n' > bad.map
if t "$NBDKIT" -U - --filter=ddrescue file disk.img ddrescue-mapfile=bad.map \
     --run true 2>err; then
  fail "a map with status X was accepted"
fi
grep -q "bad.map:3" err || fail "error does not name the line: $(cat err)"
if t "$NBDKIT" -U - --filter=ddrescue file disk.img --run true 2>/dev/null; then
  fail "no ddrescue-mapfile accepted"
fi
echo "filter-ddrescue: OK"
