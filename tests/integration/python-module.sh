#!/usr/bin/env bash
# Python host: module functions not covered elsewhere: read_lend (the
# server sends the script's bytes), peer_name/peer_pid on a Unix
# socket, parse_size/parse_bool, and read_hole outside pread failing.
. "$(dirname "$0")/functions.sh"
requires_ours
requires nbdsh
requires nbdinfo

cat > m.py <<'PY'
import os
import nbdkit
API_VERSION = 3
data = bytes(range(256)) * 16
def get_size(h):
    return 1 << 20
def pread(h, buf, offset, flags):
    nbdkit.read_lend(offset, memoryview(data)[:len(buf)])
def export_description(h):
    try:
        nbdkit.read_hole(0, 1)
        outside = "no error"
    except RuntimeError as e:
        outside = "RuntimeError"
    return "%r %s %d %s %s" % (nbdkit.peer_name(), nbdkit.peer_pid() > 0,
                               nbdkit.parse_size("1M"), nbdkit.parse_bool("on"),
                               outside)
PY
t "$NBDKIT" -U - m.py --run 'nbdsh -u "$uri" -c "
assert h.pread(4096, 8192) == bytes(range(256)) * 16
assert h.pread(100, 0) == bytes(range(100))
"' || fail "read_lend"
got="$(t "$NBDKIT" -U - m.py --run 'nbdinfo "$uri"' | sed -n 's/^\tdescription: //p')"
assert_eq "module functions" "$got" "'' True 1048576 True RuntimeError"
echo "python-module: OK"
