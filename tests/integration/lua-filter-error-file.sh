#!/usr/bin/env bash
# filters/lua/error.lua: a relative error-file= names a file in the
# directory the server was started from, also once the server has gone
# into the background (and changed directory).
. "$(dirname "$0")/functions.sh"
requires_ours
requires nbdsh --version
[ -f "$BUILDDIR/filters/nbdkit-lua-filter.so" ] || skip "Lua host not built"

sock="$tmpdir/e.sock"
register_pidfile "$tmpdir/e.pid"
"$NBDKIT" -U "$sock" -P "$tmpdir/e.pid" \
  --filter="$SRCDIR/filters/lua/error.lua" \
  pattern 1M error-rate=100% error-file=trigger error=ENOSPC \
  </dev/null >/dev/null 2>&1
wait_for_file "$tmpdir/e.pid" || fail "no pidfile"
export sock
t nbdsh -c '
import errno, os
h.connect_unix(os.environ["sock"])
h.pread(512, 0)
open("trigger", "w").close()
try:
    h.pread(512, 0)
    assert False, "no error with the trigger file present"
except nbd.Error as e:
    assert e.errnum == errno.ENOSPC, e
os.unlink("trigger")
h.pread(512, 0)
' || fail "error-file relative to the starting directory"
echo "lua-filter-error-file: OK"
