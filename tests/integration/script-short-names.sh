#!/usr/bin/env bash
# Plugins and filters shipped as scripts are found by short name, as
# nbdkit users type them: --filter=delay runs filters/lua/delay.lua,
# `nbdkit ramdisk` a plugins/ script.
. "$(dirname "$0")/functions.sh"
requires_ours
requires nbdinfo
filterdir=$("$NBDKIT" --dump-config | sed -n 's/^filterdir=//p')
plugindir=$("$NBDKIT" --dump-config | sed -n 's/^plugindir=//p')
[ -f "$filterdir/nbdkit-lua-filter.so" ] || skip "no Lua host"
[ -f "$filterdir/delay.lua" ] || fail "delay.lua not beside the filters"

# delay-read=1: a read takes at least a second, so the filter is there.
start=$(date +%s%N)
t "$NBDKIT" -U - --filter=delay memory 1M delay-read=1 \
  --run 'nbdsh -u "$uri" -c "h.pread(512, 0)"' 2>err.out \
  || fail "--filter=delay: $(cat err.out)"
elapsed=$(( ($(date +%s%N) - start) / 1000000 ))
[ "$elapsed" -ge 1000 ] || fail "--filter=delay: read took ${elapsed}ms"

# It goes by its short name in messages and -v traces.
t "$NBDKIT" -U - -v --filter=delay memory 1M \
  --run 'nbdinfo --size "$uri"' 2>err.out >/dev/null
grep -q "debug: delay: open" err.out || fail "-v: the filter is not 'delay'"

# error filter by name: every read fails.
if t "$NBDKIT" -U - --filter=error memory 1M error-pread-rate=1 \
     --run 'nbdsh -u "$uri" -c "h.pread(512, 0)"' 2>/dev/null; then
  fail "--filter=error: the read did not fail"
fi

# A plugin script by name.
if [ -f "$plugindir/nbdkit-lua-plugin.so" ] && [ -f "$plugindir/ramdisk.lua" ]; then
  assert_eq "ramdisk size" \
    "$(t "$NBDKIT" -U - ramdisk size=1M --run 'nbdinfo --size "$uri"')" 1048576
fi

# A name that is neither a .so nor a script: the usual error.
if "$NBDKIT" -U - --filter=nosuchfilter memory 1M --run true 2>err.out; then
  fail "unknown filter accepted"
fi
grep -q nosuchfilter err.out || fail "unknown filter: message: $(cat err.out)"
echo "script-short-names: OK"
