#!/usr/bin/env bash
# Messages name the layer that speaks: an error from a plugin behind
# filters reads "eval[1]: error: ...", not the name of the filter that
# called it, and the filter's own messages keep the filter's name.
. "$(dirname "$0")/functions.sh"
requires_ours
requires nbdsh
fire='echo "EIO the disk is on fire" >&2; exit 1'

# run_read FILTERS PARAMS: read through FILTERS (options) with the
# filters' PARAMS after the plugin's.
run_read ()
{
  # shellcheck disable=SC2086
  t "$NBDKIT" -U - $1 eval get_size='echo 1M' pread="$fire" $2 \
    --run 'nbdsh -u "$uri" -c "
try:
    h.pread(512, 0)
    assert False, \"the read succeeded\"
except nbd.Error:
    pass
"' 2> err.out || { cat err.out; fail "server or client failed: $*"; }
  cat err.out
}

for filters in "" "--filter=offset" "--filter=offset --filter=blocksize"; do
  run_read "$filters" "${filters:+offset=4096}"
  grep -Eq '^nbdkit: eval\[[0-9]+\]: error: .*the disk is on fire' err.out ||
    fail "with '$filters': the plugin's error is not attributed to eval"
  if grep -Eq '(offset|blocksize)\[[0-9]+\]: error: .*on fire' err.out; then
    fail "with '$filters': the plugin's error is attributed to a filter"
  fi
done

# A filter's own message keeps its name, even though it asked the
# plugin below for its size just before (offset checks its range).
t "$NBDKIT" -U - --filter=offset memory 1M offset=4096 range=2M \
  --run 'nbdinfo --size "$uri"' 2> err.out && fail "range past the end served"
cat err.out
grep -Eq '^nbdkit: offset\[[0-9]+\]: error: .*beyond the end' err.out ||
  fail "the filter's error is not attributed to offset"
echo "log-context: OK"
