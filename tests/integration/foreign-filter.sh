#!/usr/bin/env bash
# A filter built for nbdkit (Debian's .so files) is refused with a
# message saying which nbdkit version and filter API it was built for,
# not a garbage number read from the wrong layout.
. "$(dirname "$0")/functions.sh"
requires_ours
f=/usr/lib/x86_64-linux-gnu/nbdkit/filters/nbdkit-offset-filter.so
[ -f "$f" ] || skip "$f not installed"
ver=$(strings "$f" | grep -Em1 '^1\.[0-9]+\.[0-9]+$' || true)

if t "$NBDKIT" -U - --filter="$f" memory 1M --run true 2>err; then
  fail "a filter built for nbdkit was loaded"
fi
cat err
grep -q "filter for nbdkit ${ver:-1.}" err || fail "no nbdkit version in: $(cat err)"
grep -q "nbdkit filter API 6" err || fail "no filter API in: $(cat err)"
grep -q -- "--filter=offset" err || fail "no short name suggested"
if grep -q "unknown filter API" err; then fail "garbage version reported"; fi
echo "foreign-filter: OK"
