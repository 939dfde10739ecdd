#!/usr/bin/env bash
# swab and blocksize announce a minimum block size larger than the
# plugin's, so their extents come in whole blocks: a block is a hole
# (or zero) only if all of it is, whether the plugin lists all its
# extents at once or one per call.
. "$(dirname "$0")/functions.sh"
requires nbdsh --version

# The plugin's extents, "offset length type", over 32 bytes.
cat > exts <<'EOF2'
0 3
3 5 hole,zero
8 4 zero
12 12 hole,zero
24 1 hole,zero
25 7
EOF2
cat > plug.sh <<'EOF2'
#!/bin/bash
case "$1" in
  get_size) echo 32 ;;
  pread) dd if=/dev/zero count=$3 iflag=count_bytes 2>/dev/null ;;
  can_extents) exit 0 ;;
  extents)
    if [ "$ONE" = 1 ]; then
      while read -r o l ty; do
        if [ "$4" -ge "$o" ] && [ "$4" -lt $((o + l)) ]; then
          echo "$o $l $ty"; break
        fi
      done < "$TESTDIR/exts"
    else
      cat "$TESTDIR/exts"
    fi ;;
  *) exit 2 ;;
esac
EOF2
chmod +x plug.sh
export TESTDIR="$tmpdir"

# The whole disk's extents, adjacent ones of a type merged, as
# [(length, type), ...].
export script='
size = h.get_size()
pos = 0
out = []
def f(ctx, offset, e, err):
    global pos
    assert offset == pos, (offset, pos)
    for i in range(0, len(e), 2):
        if out and out[-1][1] == e[i + 1]:
            out[-1] = (out[-1][0] + e[i], e[i + 1])
        else:
            out.append((e[i], e[i + 1]))
        pos += e[i]
while pos < size:
    h.block_status(size - pos, pos, f)
print(out)
'
check ()
{
  local want="$1" filter="$2" param="$3"
  for one in 0 1; do
    got=$(ONE=$one t "$NBDKIT" -U - --filter="$filter" sh ./plug.sh "$param" \
            --run 'nbdsh --base-allocation -u "$uri" -c "$script"') \
      || fail "$* (one=$one): nbdsh failed"
    assert_eq "$* (one=$one)" "$got" "$want"
  done
}
check '[(3, 0), (5, 3), (4, 2), (13, 3), (7, 0)]' swab swab-bits=8
check '[(4, 0), (4, 3), (4, 2), (12, 3), (8, 0)]' swab swab-bits=32
check '[(8, 0), (8, 2), (8, 3), (8, 0)]' blocksize minblock=8
echo "filter-aligned-extents: OK"
