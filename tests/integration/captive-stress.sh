#!/usr/bin/env bash
# Many short-lived captive servers (--run), two at a time, each torn
# down right after serving: the data plugin read by nbdsh (the case
# that once aborted at exit in pthread_mutex_lock), the memory plugin
# under nbdcopy's several connections, filters, and a --run command
# that exits while its client is still mid-transfer.  Every server
# must serve the right bytes and exit with the command's status.
#
# The teardown races this hunts are rare in a normal build; under the
# ThreadSanitizer build (build-tsan, run by scripts/check) any of them
# makes the server exit with TSan's status 66, so the test fails there
# every time the old teardown runs (a --run waiter locking the server's
# mutex after main had freed the server).
. "$(dirname "$0")/functions.sh"
requires nbdsh
requires nbdcopy
requires_python_nbd

: "${STRESS_SERVERS:=100}"
head -c 3145728 /dev/urandom > "$tmpdir/src.img"

# one I: run server number I, to completion; exit status 0 if it served
# the right data and exited with the command's status.
one ()
{
  local i=$1 out="$tmpdir/out.$1" log="$tmpdir/log.$1" rc
  set +e
  case $((i % 5)) in
    0)
      "$NBDKIT" -U - -v -D data.AST=1 data '# ignore
 1 2 3' allocator=sparse --run 'nbdsh -u "$uri" -c "assert h.pread(3, 0) == b\"\\x01\\x02\\x03\""' \
        >"$log" 2>&1
      ;;
    1)
      "$NBDKIT" -U - memory 3M --run "nbdcopy -C 4 '$tmpdir/src.img' \"\$uri\" &&
        nbdcopy -C 4 \"\$uri\" '$out' && cmp '$tmpdir/src.img' '$out'" \
        >"$log" 2>&1
      ;;
    2)
      "$NBDKIT" -U - --filter=offset --filter=cow memory 4M offset=1M \
        --run 'nbdsh -u "$uri" -c "
import os
d = os.urandom(65536)
for o in range(0, 1 << 20, 65536):
    h.aio_pwrite(d, o)
while h.aio_in_flight() > 0:
    h.poll(-1)
assert h.pread(65536, 983040) == d
"' >"$log" 2>&1
      ;;
    3)
      # The command exits while its client still reads: the server
      # stops with a connection in flight.
      "$NBDKIT" -U - memory 64M --run "(timeout 10 nbdcopy -C 4 \"\$uri\" null: 2>/dev/null &)
        sleep 0.0$((i % 7)); exit 3" >"$log" 2>&1
      rc=$?
      [ $rc -eq 3 ] || { echo "server $i: exit status $rc, expected 3"; tail -20 "$log"; return 1; }
      return 0
      ;;
    4)
      "$NBDKIT" -U - --filter=readahead pattern 8M --run 'nbdsh -u "$uri" -c "
import struct
for off in (0, 4096, 7 << 20):
    b = h.pread(8, off)
    assert struct.unpack(\">Q\", b)[0] == off, (off, b)
"' >"$log" 2>&1
      ;;
  esac
  rc=$?
  if [ $rc -ne 0 ]; then
    echo "server $i: exit status $rc"
    grep -v ': debug: ' "$log" | tail -40
    return 1
  fi
  rm -f "$out"
}

start=$(date +%s)
failed=0
i=0
while [ $i -lt "$STRESS_SERVERS" ]; do
  one $i &
  a=$!
  one $((i + 1)) &
  b=$!
  wait $a || failed=$((failed + 1))
  wait $b || failed=$((failed + 1))
  i=$((i + 2))
done
elapsed=$(($(date +%s) - start))
note "$STRESS_SERVERS servers in ${elapsed} s, $failed failed"
[ $failed -eq 0 ] || fail "$failed of $STRESS_SERVERS servers failed"
echo "captive-stress: OK"
