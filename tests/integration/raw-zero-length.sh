#!/usr/bin/env bash
# Raw protocol: zero-length READ, WRITE, TRIM and WRITE_ZEROES succeed
# with no data (our defined behaviour; the spec leaves it open but says
# not to disconnect), with every reply style.
. "$(dirname "$0")/functions.sh"
requires_ours
requires_rawclient
requires nbdinfo

start_nbdkit mem memory 1M

for mode in simple structured extended; do
  case $mode in
    simple) neg=() ;;
    structured) neg=('opt 8') ;;
    extended) neg=('opt 11') ;;
  esac
  raw hello "${neg[@]}" go \
      'req 0 0 0 0' reply 'req 0 0 1048576 0' reply \
      'req 1 0 4096 0' reply 'req 4 0 0 0' reply 'req 6 0 0 0' reply \
      'req 1 0 0 2 abcd' reply 'req 0 0 0 2' reply 'check-hex abcd'
  for c in 1 2 3 4 5; do
    expect_line "^reply kind=[a-z]+ cookie=$c error=0 datalen=0 "
  done
  ! grep -q '^data ' raw.out || grep -q '^data offset=0 len=2' raw.out \
    || fail "$mode: zero-length read returned data"
  [ "$(grep -c '^data ' raw.out)" -le 1 ] || fail "$mode: data chunk for a zero-length read"
  expect_line '^check hex ok'
done
server_alive
echo "raw-zero-length: OK"
