#!/usr/bin/env bash
# A filter's meta context name longer than the protocol allows (4096
# bytes) is refused when the server starts, with a message saying so;
# the longest allowed name is offered and listed whole.  The server
# used to copy such a name into a fixed buffer on the stack when a
# client listed the contexts.
. "$(dirname "$0")/functions.sh"
requires_ours
requires nbdinfo --version

long=$(printf 'A%.0s' $(seq 5000))
set +e
out=$(timeout 30 "$NBDKIT" -U - --filter=cbt memory 1M "bitmap=$long" \
        --run 'nbdinfo --list "$uri"' 2>&1)
rc=$?
set -e
case $rc in
  0) fail "a 5018-byte context name was accepted" ;;
  124|13[0-9]) fail "server crashed or hung (exit $rc)" ;;
esac
echo "$out" | grep -q "4096" || fail "the error does not give the limit: $out"
echo "$out" | grep -q "cbt" || fail "the error does not name the filter: $out"

# "qemu:dirty-bitmap:" is 18 bytes: the longest allowed name.
max=$(printf 'B%.0s' $(seq $((4096 - 18))))
start_nbdkit max --filter=cbt memory 1M "bitmap=$max"
t nbdinfo --list "$uri" > list.out 2>&1 || fail "nbdinfo --list failed"
grep -q "qemu:dirty-bitmap:$max\$" list.out \
  || fail "the 4096-byte context is not listed whole"
server_alive
echo "$testname: OK"
