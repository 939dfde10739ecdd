#!/usr/bin/env bash
# nbdcopy a 64 MiB random file into a memory export and back out, with one
# and with four connections; the copies are byte-identical.
. "$(dirname "$0")/functions.sh"
requires nbdcopy
requires cmp

head -c $((64 << 20)) /dev/urandom > in.img
start_nbdkit mem memory 64M

t nbdcopy in.img "$uri"
t nbdcopy "$uri" out1.img
cmp in.img out1.img || fail "copy out differs (1 connection)"
[ "$(stat -c %s out1.img)" = $((64 << 20)) ] || fail "out1.img has wrong size"

# Reverse the data so the second round really rewrites everything.
rev_in="in2.img"
head -c $((64 << 20)) /dev/urandom > "$rev_in"
t nbdcopy --connections=4 "$rev_in" "$uri"
t nbdcopy --connections=4 --request-size=1048576 "$uri" out4.img
cmp "$rev_in" out4.img || fail "copy out differs (4 connections)"

# A sparse copy: the zero region reads back as zero.
t nbdsh -u "$uri" -c 'h.zero(8 << 20, 16 << 20)'
t nbdcopy "$uri" out5.img
cmp -n $((8 << 20)) -i $((16 << 20)):0 out5.img /dev/zero \
  || fail "zeroed region is not zero after copy"
echo "nbdcopy: OK"
