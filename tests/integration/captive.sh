#!/usr/bin/env bash
# Captive mode (--run): the variables it sets, -e EXPORTNAME, the exit
# status of the command becoming the server's, and -t 1.
. "$(dirname "$0")/functions.sh"
requires nbdinfo

# Variables with -U - and no export name.
t "$NBDKIT" -U - memory 1M --run 'echo "uri=$uri"; echo "nbd=$nbd";
  echo "unixsocket=$unixsocket"; echo "exportname=$exportname";
  test -S "$unixsocket" && echo socket-ok; nbdinfo --size "$uri"' > vars.out
cat vars.out
sock=$(sed -n 's/^unixsocket=//p' vars.out)
[ -n "$sock" ] || fail "\$unixsocket not set"
grep -Eqx "uri=nbd\+unix:///?\?socket=$sock" vars.out || fail "\$uri wrong"
grep -Eqx "nbd=nbd\+unix:///?\?socket=$sock" vars.out || fail "\$nbd wrong"
grep -qx "exportname=" vars.out || fail "\$exportname not empty"
grep -qx socket-ok vars.out || fail "\$unixsocket is not a socket"
grep -qx 1048576 vars.out || fail "size through \$uri"
# The temporary socket is gone after the server exits.
[ ! -e "$sock" ] || fail "socket $sock left behind"

# -e sets the export name in $uri and $exportname.
t "$NBDKIT" -U - -e myexport memory 1M --run 'echo "exportname=$exportname"; echo "uri=$uri"' > e.out
cat e.out
grep -qx "exportname=myexport" e.out || fail "\$exportname with -e"
grep -q '^uri=nbd+unix:///myexport?socket=' e.out || fail "\$uri with -e"

# An explicit -U path appears in $unixsocket.
t "$NBDKIT" -U "$tmpdir/my.sock" memory 1M --run 'echo "$unixsocket"' > u.out
assert_eq "explicit socket" "$(cat u.out)" "$tmpdir/my.sock"

# The --run command's exit status becomes the server's.
set +e
t "$NBDKIT" -U - memory 1M --run 'exit 3'
rc=$?
set -e
assert_eq "--run 'exit 3' status" "$rc" 3
t "$NBDKIT" -U - memory 1M --run 'exit 0' || fail "--run 'exit 0' failed"
set +e
t "$NBDKIT" -U - memory 1M --run 'nbdinfo --size "nbd+unix:///?socket=$unixsocket.nope"' 2>/dev/null
rc=$?
set -e
[ "$rc" -ne 0 ] || fail "failing command gave status 0"

# Data written in captive mode is read back in the same run; -t 1 (one
# thread) works.
t "$NBDKIT" -t 1 -U - memory 1M --run 'nbdsh -u "$uri" -c "
h.pwrite(b\"abc\" * 1000, 7)
assert h.pread(3000, 7) == b\"abc\" * 1000
assert h.pread(1, 3007) == b\"\\0\"
print(\"rw-ok\")
"' > t1.out
grep -qx rw-ok t1.out || fail "-t 1 read/write"
echo "captive: OK"
