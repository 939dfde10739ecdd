#!/usr/bin/env bash
# Raw protocol: NBD_OPT_EXTENDED_HEADERS.  After it is acknowledged,
# requests are 32-byte extended requests and every reply uses the
# extended header (offset = the request's offset), including errors and
# commands without data; block status comes as BLOCK_STATUS_EXT.
. "$(dirname "$0")/functions.sh"
requires_ours
requires_rawclient

start_nbdkit mem memory 16M

meta='00000000000000010000000f626173653a616c6c6f636174696f6e'
raw hello 'opt 11' 'opt 8' "opt-raw 10 $meta" go \
    'req 1 0 65536 65536 fill:0x5a:65536' reply \
    'req 0 0 65536 65536' reply 'check-fill 0x5a' \
    'req 0 0 0 4096' reply 'check-fill 0' \
    'req 3 0 0 0' reply \
    'req 0 0 16777215 2' reply \
    'req 7 0 0 1048576' reply \
    'req 2 0 0 0'
expect_line '^optreply opt=11 .* ack'
# Structured replies cannot be negotiated on top: EXT_HEADER_REQD (10).
expect_line '^optreply opt=8 .* error=10'
expect_line '^optreply opt=10 type=0x4 '
expect_line '^go ok'
expect_line '^sent cookie=1 type=1 flags=0x20 offset=65536 length=65536 extended'
expect_line '^reply kind=extended cookie=1 error=0 '
expect_line '^chunk kind=extended flags=0x[01] type=1 cookie=2 offset=65536 length=[0-9]+'
expect_line '^data offset=65536 len=[0-9]+'
expect_line '^reply kind=extended cookie=2 error=0 datalen=65536 '
[ "$(grep -c '^check fill ok' raw.out)" = 2 ] || fail "read data"
expect_line '^reply kind=extended cookie=3 error=0 datalen=4096 '
expect_line '^chunk kind=extended flags=0x1 type=0 cookie=4 offset=0 length=0'
expect_line '^reply kind=extended cookie=4 error=0 '
expect_line '^chunk kind=extended flags=0x1 type=3276[89] cookie=5 offset=16777215 '
expect_line '^reply kind=extended cookie=5 error=22 '
expect_line '^chunk kind=extended flags=0x1 type=6 cookie=6 offset=0 '
expect_line '^block-status-ext context=[0-9]+ count=[1-9]'
expect_line '^extent len=[0-9]+ flags=0x[0-3]'
! grep -Eq '^reply kind=(simple|structured)' raw.out \
  || fail "a non-extended reply after extended headers"
! grep -q 'unknown-cookie' raw.out || fail "cookie not echoed"

# Extended header, large effect length without payload: a 64 KiB zero
# via WRITE_ZEROES, then read back.
raw hello 'opt 11' go 'req 6 0 65536 65536' reply \
    'req 0 0 65536 65536' reply 'check-fill 0'
expect_line '^reply kind=extended cookie=1 error=0 '

# A READ that sets PAYLOAD_LEN with a payload: EINVAL after the payload
# is consumed, and the connection survives.
raw hello 'opt 11' go 'req 0 0 0 8 0102030405060708' reply \
    'req 0 0 0 8' reply
expect_line '^reply kind=extended cookie=1 error=22 '
expect_line '^reply kind=extended cookie=2 error=0 datalen=8 '
echo "raw-ext-headers: OK"
