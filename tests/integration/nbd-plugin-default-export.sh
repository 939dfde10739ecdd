#!/usr/bin/env bash
# nbd plugin, dynamic-export=true: the default export is the one the
# server behind names (its canonical name reaches the client); when
# the server behind has none, asking for it fails, other names work.
. "$(dirname "$0")/functions.sh"
requires_ours
requires nbdinfo

start_nbdkit back eval get_size='echo "$2" | wc -c' open='echo "$3"' \
  default_export="cat '$tmpdir/default'"
back=$sock
start_nbdkit front nbd socket="$back" dynamic-export=true

echo chosen > "$tmpdir/default"
for s in "$back" "$sock"; do
  t nbdinfo --no-content "nbd+unix:///?socket=$s" | grep -v uri: > "info.$(basename "$s")"
done
grep -q 'export="chosen"' info.front.sock \
  || fail "default export name not passed on: $(cat info.front.sock)"
diff -u info.back.sock info.front.sock || fail "front and back differ"
assert_eq "size of the default" \
  "$(t nbdinfo --size "nbd+unix:///?socket=$sock")" 7

rm "$tmpdir/default"
if t nbdinfo --size "nbd+unix:///?socket=$sock" 2> err; then
  fail "the default export was served though the server behind has none"
fi
assert_eq "a named export" \
  "$(t nbdinfo --size "nbd+unix:///other?socket=$sock")" 6
