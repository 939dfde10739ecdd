#!/usr/bin/env bash
# Raw protocol: an option declaring 1 GiB of data.  The server closes the
# connection or replies with an error, and does not allocate the memory.
. "$(dirname "$0")/functions.sh"
requires_ours
requires_rawclient
requires nbdinfo

start_nbdkit mem memory 1M
rss () { awk '/^VmRSS:/ { print $2 }' "/proc/$pid/status"; }
before=$(rss)

# The server must answer (close, or error) within RAW_TIMEOUT seconds,
# without waiting for the gigabyte.
RAW_TIMEOUT=4
for opt in 7 3 8 11 1 12345; do
  raw hello "opt-len $opt 1073741824" 'sleep 100' 'optreply' \
      'raw 000000' expect-closed || true
  # Either closed (EOF, reset) or an error option reply (TOO_BIG /
  # INVALID) and then closed.
  grep -Eq '^(eof|ioerror|write-failed|closed)|^optreply opt=[0-9]+ type=0x8' raw.out \
    || fail "option $opt: neither closed nor an error"
  ! grep -q '^timeout' raw.out || fail "option $opt: server waits for the data"
  ! grep -Eq '^optreply .* ack' raw.out || fail "option $opt acknowledged"
done
after=$(rss)
note "RSS before=${before} kB after=${after} kB"
[ $((after - before)) -lt 102400 ] || fail "server RSS grew by $((after - before)) kB"

# A 4 GiB - 1 declared length, with the connection left open.
raw hello 'opt-len 6 4294967295' 'sleep 100' 'optreply' || true
! grep -q '^timeout' raw.out || fail "4 GiB option: server waits for the data"
after=$(rss)
[ $((after - before)) -lt 102400 ] || fail "server RSS grew by $((after - before)) kB"
server_alive
echo "raw-oversized-option: OK"
