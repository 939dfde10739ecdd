#!/usr/bin/env bash
# Raw protocol: requests past the end of the export.  READ, TRIM,
# BLOCK_STATUS and CACHE get NBD_EINVAL; WRITE and WRITE_ZEROES get
# NBD_ENOSPC (proto-facts §6).  The connection stays usable and nothing
# is written.
. "$(dirname "$0")/functions.sh"
requires_ours
requires_rawclient
requires nbdinfo

size=1048576
start_nbdkit mem memory $size

for mode in simple structured extended; do
  case $mode in
    simple) neg=() ;;
    structured) neg=('opt 8') ;;
    extended) neg=('opt 11') ;;
  esac
  raw hello "${neg[@]}" go \
      "req 0 0 $((size - 512)) 1024" reply \
      "req 1 0 $((size - 2)) 4 fill:0x77:4" reply \
      "req 4 0 $((size - 512)) 1024" reply \
      "req 6 0 $((size - 512)) 1024" reply \
      "req 5 0 $((size - 512)) 1024" reply \
      "req 0 0 $size 1" reply \
      "req 0 0 0xffffffffffff0000 512" reply \
      "req 0 0 $((size - 4)) 4" reply 'check-hex 00000000'
  expect_line '^reply kind=[a-z]+ cookie=1 error=22 '
  expect_line '^reply kind=[a-z]+ cookie=2 error=28 '
  expect_line '^reply kind=[a-z]+ cookie=3 error=22 '
  expect_line '^reply kind=[a-z]+ cookie=4 error=28 '
  expect_line '^reply kind=[a-z]+ cookie=5 error=22 '
  expect_line '^reply kind=[a-z]+ cookie=6 error=22 '
  expect_line '^reply kind=[a-z]+ cookie=7 error=22 '
  expect_line '^reply kind=[a-z]+ cookie=8 error=0 datalen=4 '
  expect_line '^check hex ok'
done
server_alive
echo "raw-past-end: OK"
