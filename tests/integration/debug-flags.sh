#!/usr/bin/env bash
# -D flags and -v tracing, as nbdkit users rely on them: a plugin's
# flag (NAME_debug_FLAG) is set; a flag naming no variable, or no
# plugin, is warned about; a malformed one refused; -v traces every
# call into each layer, and -D nbdkit.backend.controlpath=0 /
# datapath=0 silence the set-up calls / the data requests.
. "$(dirname "$0")/functions.sh"
requires_ours
requires nbdinfo
requires nbdsh --version
TESTPLUG="$BUILDDIR/tests/plugins/nbdkit-testplug-plugin.so"
[ -f "$TESTPLUG" ] || skip "no test plugin"

read_once='nbdsh -u "$uri" -c "h.pread(512, 1024)"'
t "$NBDKIT" -U - -v -D testplug.say-pread=1 "$TESTPLUG" size=1M \
  --run "$read_once" 2>err.out || fail "with -D testplug.say-pread=1"
grep -q "say-pread: offset 1024" err.out || fail "plugin flag not set"
t "$NBDKIT" -U - -v "$TESTPLUG" size=1M --run "$read_once" 2>err.out
! grep -q "say-pread" err.out || fail "flag on without -D"

t "$NBDKIT" -U - -D testplug.nosuch=1 "$TESTPLUG" size=1M --run true 2>err.out
grep -q "warning.*does not contain a global variable called testplug_debug_nosuch" \
  err.out || fail "unknown flag: $(cat err.out)"
t "$NBDKIT" -U - -D other.flag=1 "$TESTPLUG" size=1M --run true 2>err.out
grep -q "warning.*was not used" err.out || fail "unused flag: $(cat err.out)"
for bad in = . =. .= .x=1 testplug.=1 testplug.x= testplug.x=abc; do
  if "$NBDKIT" -U - -D "$bad" "$TESTPLUG" size=1M --run true 2>err.out; then
    fail "-D '$bad' accepted"
  fi
done
"$NBDKIT" -U - -D . memory 1M 2>&1 | grep -q "must have the format" \
  || fail "-D .: message"

# The file plugin's flag, as nbdkit's: -D file.zero=1 says how it zeroed.
truncate -s 1M disk.img
t "$NBDKIT" -U - -v -D file.zero=1 file disk.img \
  --run 'nbdsh -u "$uri" -c "h.zero(65536, 0)"' 2>err.out \
  || fail "file.zero: $(cat err.out)"
grep -q "zero succeeded using\|zero: no fast way" err.out \
  || fail "-D file.zero=1: no message"
! grep -q warning err.out || fail "-D file.zero=1: $(grep warning err.out)"

# -v traces each layer's calls, filter and plugin.
run () { t "$NBDKIT" -U - -v "$@" --filter=noextents memory 1M \
           --run 'nbdcopy "$uri" /dev/null' 2>&1; }
out="$(run)"
for want in "memory: preconnect" "noextents: open" "memory: open" "noextents: pread" \
            "memory: pread" "memory: get_size" "memory: close" \
            "negotiation: NBD_OPT_GO"; do
  grep -q "^nbdkit:.*debug: .*$want" <<<"$out" || fail "-v: no '$want'"
done
out="$(run -D nbdkit.backend.controlpath=0)"
! grep -q "debug: memory: open" <<<"$out" || fail "controlpath=0: open traced"
grep -q "debug: memory: pread" <<<"$out" || fail "controlpath=0: no pread"
out="$(run -D nbdkit.backend.datapath=0)"
grep -q "debug: memory: open" <<<"$out" || fail "datapath=0: no open"
! grep -q "debug: memory: pread" <<<"$out" || fail "datapath=0: pread traced"
echo "debug-flags: OK"
