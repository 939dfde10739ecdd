#!/usr/bin/env bash
# Two nbd plugins in a chain stay correct under a parallel copy.
. "$(dirname "$0")/functions.sh"
requires nbdcopy
requires nbdsh
cd "$tmpdir"

head -c $((24 << 20)) /dev/urandom > src.img
# Leave a zero run in the middle so holes go through the chain too.
dd if=/dev/zero of=src.img bs=1M seek=8 count=4 conv=notrunc status=none
start_nbdkit back memory 24M
back_uri="$uri"
start_nbdkit px1 nbd socket="$sock"
start_nbdkit px2 nbd "$uri"
t nbdcopy -C 4 --request-size=262144 src.img "$uri"
t nbdcopy -C 4 "$uri" out1.img
cmp src.img out1.img || fail "read back through the chain differs"
t nbdcopy "$back_uri" out2.img
cmp src.img out2.img || fail "the backend differs"
echo "nbd-plugin-chain: OK"
