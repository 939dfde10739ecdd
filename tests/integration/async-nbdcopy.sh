#!/usr/bin/env bash
# Asynchronous completion with nbdcopy (core/async.c): 32 MiB of random
# data copied into the async test plugin and back out, with 64 requests
# in flight, while the plugin completes them out of order from its own
# threads; under serialize_retirement (replies in request order) and
# parallel, with and without structured replies, with two worker
# threads or one (-t 2, -t 1).  The bytes must come back the same, and
# the plugin must have had more requests outstanding at once than the
# server has threads (waiting for each, it would have had at most 2).
. "$(dirname "$0")/functions.sh"
requires_ours
requires nbdcopy
asyncplug="$BUILDDIR/tests/plugins/nbdkit-asyncplug-plugin.so"
[ -e "$asyncplug" ] || skip "async test plugin not built"
cd "$tmpdir"

head -c 32M /dev/urandom > in.img
for model in serialize_retirement parallel; do
  for extra in "-t 2" "-t 1" "--no-sr -t 2"; do
    name="$model${extra// /}"
    # shellcheck disable=SC2086
    start_nbdkit "$name" $extra "$asyncplug" size=32M delay=2 threads=3 \
      thread-model=$model stats="$tmpdir/st-$name"
    t nbdcopy --requests=64 -C 1 in.img "$uri"
    t nbdcopy --requests=64 -C 1 "$uri" out.img
    cmp in.img out.img || fail "$name: the data read back differs"
    rm -f out.img
    stop_nbdkit "$pid"
    most=$(sed -n 's/^max_outstanding=//p' "$tmpdir/st-$name")
    left=$(sed -n 's/^close_outstanding=//p' "$tmpdir/st-$name")
    note "$name: $most requests outstanding at most"
    [ "$most" -gt 4 ] || fail "$name: only $most outstanding at once"
    [ "$left" = 0 ] || fail "$name: $left outstanding at close"
  done
done
echo "async-nbdcopy: OK"
