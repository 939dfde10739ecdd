#!/usr/bin/env bash
# Raw protocol: a request with a bad magic closes that connection (the
# server cannot resynchronise) and nothing else.
. "$(dirname "$0")/functions.sh"
requires_ours
requires_rawclient
requires nbdinfo

start_nbdkit mem memory 1M

# hdr MAGIC LENBITS: a READ request header (offset 0, length 512) with the
# given magic, as hex: LENBITS 32 for compact, 64 for extended.
hdr ()
{
  if [ "$2" = 32 ]; then printf '%08x%04x%04x%016x%016x%08x' "$1" 0 0 1 0 512
  else printf '%08x%04x%04x%016x%016x%016x' "$1" 0 0 1 0 512; fi
}

# Compact phase, simple replies.  28 bytes, wrong magic.
raw hello go 'req 0 0 0 512' reply "raw $(hdr 0x25609514 32)" expect-closed
expect_line '^reply kind=simple cookie=1 error=0 datalen=512'
expect_line '^closed '
server_alive

# With structured replies; an all-zero header.
raw hello 'opt 8' go "raw $(printf '%056d' 0)" expect-closed
expect_line '^optreply opt=8 .* ack'
expect_line '^closed '

# The extended request magic without extended headers negotiated.
raw hello 'opt 8' go "raw $(hdr 0x21e41c71 64)" expect-closed
expect_line '^closed '

# The compact magic (in a 32-byte header) after extended headers were
# negotiated.
raw hello 'opt 11' go "raw $(hdr 0x25609513 64)" expect-closed
expect_line '^optreply opt=11 .* ack'
expect_line '^closed '
server_alive
echo "raw-bad-magic: OK"
