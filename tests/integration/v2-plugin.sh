#!/usr/bin/env bash
# Existing v2 plugin binaries load: our server runs Debian's memory
# plugin by path.
. "$(dirname "$0")/functions.sh"
requires_ours
requires nbdinfo
plugin=/usr/lib/x86_64-linux-gnu/nbdkit/plugins/nbdkit-memory-plugin.so
[ -f "$plugin" ] || skip "$plugin not installed"

t "$NBDKIT" -U - "$plugin" 1M --run 'nbdinfo --json "$uri"' > info.json
"$PYTHON" -c '
import json
e = json.load(open("info.json"))["exports"][0]
assert e["export-size"] == 1 << 20, e
assert e["is_read_only"] is False
'
t "$NBDKIT" -U - "$plugin" size=1M --run 'nbdsh -u "$uri" -c "
h.pwrite(b\"v2 plugin\", 4097)
assert h.pread(9, 4097) == b\"v2 plugin\"
assert h.pread(8, 0) == bytes(8)
"'
t "$NBDKIT" "$plugin" --dump-plugin | grep -qx 'name=memory' || fail "--dump-plugin"
t "$NBDKIT" "$plugin" --dump-plugin | grep -qx 'api_version=2' || fail "api_version=2"
# Its own struct described as nbdkit describes it.
t "$NBDKIT" "$plugin" --dump-plugin > dump.out
for want in max_thread_model=parallel thread_model=parallel \
            errno_is_preserved=1 has_pread=1 has_get_size=1 has_can_fua=1; do
  grep -qx "$want" dump.out || fail "--dump-plugin v2: no $want"
done
pat=/usr/lib/x86_64-linux-gnu/nbdkit/plugins/nbdkit-pattern-plugin.so
if [ -f "$pat" ]; then
  t "$NBDKIT" -U - "$pat" 1M --run 'nbdsh -u "$uri" -c "
assert h.pread(8, 4096) == (4096).to_bytes(8, \"big\")
"'
fi
echo "v2-plugin: OK"
