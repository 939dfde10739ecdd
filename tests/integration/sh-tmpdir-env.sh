#!/usr/bin/env bash
# sh plugin: $tmpdir is the script's own, set in the script's
# environment only: it does not leak into --run (nor replace a tmpdir
# the user exported for --run), and the script never sees the user's.
. "$(dirname "$0")/functions.sh"

cat > plug.sh <<'EOF2'
#!/bin/bash
case "$1" in
  get_ready) [ -d "$tmpdir" ] && [ "$tmpdir" != /nowhere ] || exit 1 ;;
  get_size) echo 1M ;;
  pread) dd if=/dev/zero count=$3 iflag=count_bytes 2>/dev/null ;;
  *) exit 2 ;;
esac
EOF2
chmod +x plug.sh
(unset tmpdir; t "$NBDKIT" -U - sh ./plug.sh --run 'test -z "${tmpdir:-}"') ||
  fail "tmpdir leaked into --run"
tmpdir=/nowhere t "$NBDKIT" -U - sh ./plug.sh --run 'test "$tmpdir" = /nowhere' ||
  fail "the user's tmpdir was replaced, or the script saw it"
echo "sh-tmpdir-env: OK"
