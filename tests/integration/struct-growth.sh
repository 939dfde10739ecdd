#!/usr/bin/env bash
# The v3 structs only grow at the end (abi/README.md): a plugin or
# filter built against an older, shorter struct loads, with the fields
# it lacks treated as absent; one built against a newer, longer struct
# is refused with a message naming both sizes.  The layers come from
# tests/plugins/grow.c: their struct ends before `extents`, or runs 16
# bytes past the server's.
. "$(dirname "$0")/functions.sh"
requires_ours
requires nbdinfo
requires nbdsh
plugins="$BUILDDIR/tests/plugins"
short="$plugins/nbdkit-growshort-plugin.so"
long="$plugins/nbdkit-growlong-plugin.so"
fshort="$plugins/nbdkit-growshort-filter.so"
flong="$plugins/nbdkit-growlong-filter.so"
for f in "$short" "$long" "$fshort" "$flong"; do
  [ -f "$f" ] || fail "$f not built"
done

# The short plugin loads.  Its extents (past the cut) would call the
# whole disk a zeroed hole; absent, the server reports it all as data.
t "$NBDKIT" -U - "$short" --run 'nbdinfo --size "$uri"; nbdinfo --map "$uri"' \
  > short.out 2> short.err || { cat short.err; fail "short plugin refused"; }
cat short.out
assert_eq "size" "$(head -1 short.out)" 1048576
sed -n 2p short.out | grep -Eq '^ *0 +1048576 +0 +data$' ||
  fail "short plugin: extents past its struct were used: $(sed -n 2p short.out)"
# Its cache (past the cut) fails; absent, the server emulates nothing
# and the read data are the plugin's.
t "$NBDKIT" -U - "$short" --run 'nbdsh -u "$uri" -c "
assert h.pread(4, 4096) == b\"\xab\" * 4
assert not h.can_cache()
"' || fail "short plugin: reads or can_cache wrong"

# The long plugin is refused, naming both sizes.
if t "$NBDKIT" -U - "$long" --run 'true' > long.out 2> long.err; then
  fail "a plugin with a longer struct was loaded"
fi
cat long.err
grep -q 'newer <nbdkit-plugin.h>' long.err || fail "long plugin: message"
ours=$(grep -o 'knows [0-9]* bytes' long.err | grep -o '[0-9]*')
theirs=$(grep -o 'struct is [0-9]* bytes' long.err | grep -o '[0-9]*')
[ -n "$ours" ] && [ -n "$theirs" ] || fail "long plugin: sizes not named"
assert_eq "long plugin: size difference" "$((theirs - ours))" 16

# A struct that ends before pread lacks a required callback: refused,
# naming it.
tiny="$plugins/nbdkit-growtiny-plugin.so"
if t "$NBDKIT" -U - "$tiny" --run 'true' > tiny.out 2> tiny.err; then
  fail "a plugin without pread was loaded"
fi
cat tiny.err
grep -q "lacks the required pread callback" tiny.err || fail "tiny plugin: message"

# The short filter loads over memory; its extents (past the cut) would
# fail every block status request, and absent, they pass through.
t "$NBDKIT" -U - --filter="$fshort" memory 1M \
  --run 'nbdinfo --map "$uri"' > fshort.out 2> fshort.err ||
  { cat fshort.err; fail "short filter refused or its extents were used"; }
cat fshort.out
grep -Eq '^ *0 +1048576 +3 +hole,zero$' fshort.out ||
  fail "short filter: memory's extents did not pass through"

# The long filter is refused, naming both sizes.
if t "$NBDKIT" -U - --filter="$flong" memory 1M --run 'true' \
     > flong.out 2> flong.err; then
  fail "a filter with a longer struct was loaded"
fi
cat flong.err
grep -q 'newer <nbdkit-filter.h>' flong.err || fail "long filter: message"
grep -Eq 'struct is [0-9]+ bytes.*knows [0-9]+ bytes' flong.err ||
  fail "long filter: sizes not named"
echo "struct-growth: OK"
