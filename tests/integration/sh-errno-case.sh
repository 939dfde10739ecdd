#!/usr/bin/env bash
# sh plugin: the errno name a script prints on stderr is read in either
# case ("eperm" is EPERM, as in nbdkit); a word that only starts like
# one (EINVALID) is not taken for it; an errno NBD cannot carry (EPIPE)
# reaches the client as EIO.
. "$(dirname "$0")/functions.sh"
requires nbdsh --version

for pair in eperm:EPERM ENOSPC:ENOSPC "enospc tail text:ENOSPC" \
            EINVALID:EIO "nomem:EIO" EPIPE:EIO "enoent x:EIO"; do
  msg=${pair%:*} want=${pair##*:}
  printf 'case "$1" in get_size) echo 64K;; pread) echo "%s" >&2; exit 1;; *) exit 2;; esac\n' \
    "$msg" > plug.sh
  chmod +x plug.sh
  t "$NBDKIT" -U - sh ./plug.sh --run "nbdsh -u \"\$uri\" -c '
import errno
try:
    h.pread(1, 0)
    assert False
except nbd.Error as e:
    assert e.errnum == errno.$want, (e.errnum, \"$msg\")
'" 2>/dev/null || fail "'$msg' did not give $want"
done
echo "sh-errno-case: OK"
