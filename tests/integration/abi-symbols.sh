#!/usr/bin/env bash
# libnbdkit exports the plugin ABI and <nbdkit-server.h>, nothing else:
# its dynamic symbols are exactly core/libnbdkit.symbols, and each is
# declared in a public header.  A new ABI function is added to the list
# on purpose; an internal function that leaks out fails here.
. "$(dirname "$0")/functions.sh"
requires_ours
requires nm
lib="$BUILDDIR/libnbdkit.so"
[ -f "$lib" ] || fail "$lib not built"
nm -D --defined-only "$lib" | awk '{print $3}' | sort > got
sort "$SRCDIR/core/libnbdkit.symbols" > want
if ! diff -u want got; then
  fail "libnbdkit's exported symbols differ from core/libnbdkit.symbols"
fi
# Every exported name appears in an installed header.
for sym in $(cat got); do
  grep -qw "$sym" "$SRCDIR"/abi/nbdkit-*.h ||
    fail "$sym is exported but declared in no header in abi/"
done
# The server's internals are not there (a sample the loader would find
# by name in the global namespace plugins are loaded into).
for sym in backend_pread conn_recv handshake server_run cmdline_parse; do
  if grep -qx "$sym" got; then fail "$sym is exported"; fi
done
echo "abi-symbols: OK ($(wc -l < got) symbols)"
