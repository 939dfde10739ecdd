#!/usr/bin/env bash
# eval plugin (the sh plugin's exit codes, through eval): the exit codes beyond 0-3 and the errno each
# gives a failed write, with and without an errno named on stderr:
# 4 shuts the server down after success, 5 after an error (ESHUTDOWN
# unless named), 6 drops the connection, 7 succeeds and ends the
# connection softly, 8 fails and ends it (ESHUTDOWN unless named).
. "$(dirname "$0")/functions.sh"
requires_ours
requires_python_nbd

# pwrite exits with the export name's absolute value; a negative name
# also says EPERM on stderr.
serve ()
{
  start_nbdkit ex eval get_size='echo 1024' \
    open='echo "$3"' flush='exit 0' \
    pwrite='cat > /dev/null; case $2 in -*) echo EPERM >&2;; esac
            n=$2; exit ${n#-}'
}

# write CODE: the errno name of a write to export CODE, or "ok"; then
# whether the next command works ("next-ok", or its errno).
write ()
{
  t "$PYTHON" - "$sock" "$1" <<'PY'
import errno, sys, nbd
h = nbd.NBD()
h.set_export_name(sys.argv[2])
h.connect_unix(sys.argv[1])
def attempt(f):
    try:
        f()
        return "ok"
    except nbd.Error as ex:
        return errno.errorcode.get(ex.errnum, str(ex.errnum))
print(attempt(lambda: h.pwrite(b"1", 0)), attempt(lambda: h.flush()))
PY
}

gone ()
{
  for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || return 0; sleep 0.1; done
  return 1
}

serve
assert_eq "exit 1" "$(write 1)" "EIO ok"
assert_eq "exit 1, EPERM" "$(write -1)" "EPERM ok"
# 7: the write succeeds, then the server ends the connection.
assert_eq "exit 7" "$(write 7)" "ok ESHUTDOWN"
# 8: the write fails (ESHUTDOWN, or the errno named), then the same.
assert_eq "exit 8" "$(write 8)" "ESHUTDOWN ESHUTDOWN"
assert_eq "exit 8, EPERM" "$(write -8)" "EPERM ESHUTDOWN"
# 6: no reply, the connection is dropped.
r=$(write 6)
case "$r" in ENOTCONN*|ESHUTDOWN*) ;; *) fail "exit 6: $r" ;; esac
server_alive
stop_nbdkit "$pid"

# 5: an error (ESHUTDOWN unless named) and the server shuts down.
for name in 5 -5; do
  serve
  r=$(write $name || true)
  want=ESHUTDOWN; [ "$name" = -5 ] && want=EPERM
  case "$r" in "$want "*|ENOTCONN*) ;; *) fail "exit $name: $r" ;; esac
  gone || fail "exit $name did not shut the server down"
done
# 4: the write succeeds and the server shuts down.
serve
r=$(write 4 || true)
case "$r" in ok*|ENOTCONN*) ;; *) fail "exit 4: $r" ;; esac
gone || fail "exit 4 did not shut the server down"
