#!/usr/bin/env bash
# Raw protocol: an unknown command or unknown flag gets NBD_EINVAL and
# the connection stays usable.
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
      'req 1 0 4096 4 deadbeef' reply \
      'req 99 0 0 0' reply \
      'req 0 0 4096 4' reply 'check-hex deadbeef' \
      'req 0 0x4000 4096 4' reply \
      'req 200 0 4096 512' reply \
      'req 0 0 4096 4' reply 'check-hex deadbeef'
  # Cookies 2, 4, 5 are the bad requests.
  for c in 2 4 5; do
    expect_line "^reply kind=[a-z]+ cookie=$c error=22 "
  done
  for c in 1 3 6; do
    expect_line "^reply kind=[a-z]+ cookie=$c error=0 "
  done
  [ "$(grep -c '^check hex ok' raw.out)" = 2 ] || fail "$mode: data check"
  if [ $mode = extended ]; then
    expect_line '^optreply opt=11 .* ack'
    ! grep -Eq '^reply kind=(simple|structured)' raw.out \
      || fail "non-extended reply after extended headers"
  fi
done
server_alive
echo "raw-unknown-cmd: OK"
