#!/usr/bin/env bash
# nbdkit's command line as its users type it: the version scheme tools
# gate on, the option lists, relative paths resolved before the server
# goes into the background, the oldstyle protocol, --tls=on without
# certificates, and the option spellings nbdkit documents.
. "$(dirname "$0")/functions.sh"
requires nbdinfo
requires nbdsh --version

# Version: nbdkit's numbering first (1.x), the project's beside it.
v="$("$NBDKIT" --version)"
[[ "$v" =~ ^nbdkit\ 1\.[0-9]+\.[0-9]+ ]] || fail "--version: '$v'"
cfg="$("$NBDKIT" --dump-config)"
grep -qx 'version_major=1' <<<"$cfg" || fail "--dump-config: version_major"
minor=$(sed -n 's/^version_minor=//p' <<<"$cfg")
[ "$minor" -ge 32 ] || fail "--dump-config: version_minor=$minor"
for k in mandir sbindir sysconfdir root_tls_certificates_dir selinux zstd; do
  grep -q "^$k=" <<<"$cfg" || fail "--dump-config: no $k="
done
if [ "$OURS" = 1 ]; then
  grep -q "^project_version=" <<<"$cfg" || fail "no project_version="
  [[ "$v" =~ \(project\ [0-9] ]] || fail "--version: no project version"
fi

# Option lists, one a line.
lo="$("$NBDKIT" --long-options)"
for o in --help --version --ipv4-only --ipv6-only --ip-addr --pid-file \
         --newstyle --new-style --oldstyle --old-style --swap; do
  grep -qx -- "$o" <<<"$lo" || fail "--long-options lacks $o"
done
! grep -qx -- --long-options <<<"$lo" || fail "--long-options lists itself"
so="$("$NBDKIT" --short-options)"
for o in -v -V -n -o -4 -6 -P -U; do
  grep -qx -- "$o" <<<"$so" || fail "--short-options lacks $o"
done

# Relative -P and -U, the server in the background: both land in the
# directory the server was started from, not in "/".
mkdir "$tmpdir/rel"
cd "$tmpdir/rel"
register_pidfile "$tmpdir/rel/rel.pid"
t "$NBDKIT" -P rel.pid -U rel.sock memory 1M
wait_for_file "$tmpdir/rel/rel.pid" 100 || fail "relative -P: no pidfile here"
[ -S "$tmpdir/rel/rel.sock" ] || fail "relative -U: no socket here"
assert_eq "size via relative socket" \
  "$(t nbdinfo --size "nbd+unix:///?socket=$tmpdir/rel/rel.sock")" 1048576
stop_nbdkit "$(cat rel.pid)"
# The pidfile outlives the server, as nbdkit's: a script reads the pid
# after the server went, to wait for it.
[ -s "$tmpdir/rel/rel.pid" ] || fail "pidfile removed at exit"

# --pid-file and --ip-addr / --ipv4-only spellings.
port=$(free_port)
register_pidfile "$tmpdir/rel/tcp.pid"
t "$NBDKIT" -f --pid-file=tcp.pid --ipv4-only --ip-addr=127.0.0.1 -p "$port" \
  memory 2M &
register_pid $!
wait_for_file "$tmpdir/rel/tcp.pid" 100 || fail "--pid-file: no pidfile"
assert_eq "size over -4 --ip-addr" \
  "$(t nbdinfo --size "nbd://127.0.0.1:$port")" 2097152
stop_nbdkit "$(cat tcp.pid)"
cd "$tmpdir"

# -o: the oldstyle greeting; libnbd speaks it.  Data round-trips.
start_nbdkit old -o memory 1M
t nbdsh -u "$uri" -c '
assert h.get_protocol() == "oldstyle", h.get_protocol()
assert h.get_size() == 1048576
h.pwrite(b"oldstyle", 512)
assert h.pread(8, 512) == b"oldstyle"
' || fail "-o: oldstyle client"
stop_nbdkit "$pid"
# -n is the default newstyle.
start_nbdkit new -n memory 1M
t nbdsh -u "$uri" -c 'assert h.get_protocol() == "newstyle-fixed"' \
  || fail "-n: newstyle"
stop_nbdkit "$pid"
# Oldstyle has no TLS: requiring it is refused.
if "$NBDKIT" -o --tls=require -U - memory 1M --run true 2>err.out; then
  fail "-o --tls=require accepted"
fi
grep -q "oldstyle" err.out || fail "-o --tls=require: message: $(cat err.out)"

# --tls=on without certificates: a warning, and plaintext serving.
HOME="$tmpdir/nohome" t "$NBDKIT" --tls=on -U - memory 1M \
  --run 'nbdinfo --size "$uri"' >size.out 2>err.out \
  || fail "--tls=on without certificates: $(cat err.out)"
assert_eq "--tls=on plaintext size" "$(cat size.out)" 1048576
grep -q "warning" err.out || fail "--tls=on without certificates: no warning"

# $uri leaves out the default export name, as nbdkit's does.
t "$NBDKIT" -U "$tmpdir/u.sock" memory 1M --run 'echo "$uri"' > uri.out
assert_eq "\$uri" "$(cat uri.out)" "nbd+unix://?socket=$tmpdir/u.sock"
# Only a key name before '=' makes key=value: '"a=b"' is the data
# plugin's bare value (the three bytes "a=b", quotes being its string
# syntax).
t "$NBDKIT" -U - data '"a=b"' --run 'nbdcopy "$uri" -' > bare.out \
  || fail "data '\"a=b\"' refused"
assert_eq "bare value with =" "$(cat bare.out)" "a=b"
# A key given twice: the last counts.
assert_eq "size given twice" \
  "$(t "$NBDKIT" -U - memory size=1M size=2M --run 'nbdinfo --size "$uri"')" \
  2097152

# Socket activation: the server stays in the foreground (the client
# that started it waits for it), and leaves nothing running after.
t nbdinfo --size -- [ "$NBDKIT" -v memory 1M ] >sa.out 2>sa.err \
  || fail "socket activation: $(cat sa.err)"
assert_eq "socket-activated size" "$(cat sa.out)" 1048576
sleep 0.5
! pgrep -f "$NBDKIT -v memory 1M" >/dev/null \
  || fail "socket activation left a server running"
# ... and -U or -s with socket activation are refused.
for opt in "-U $tmpdir/sa.sock" -s; do
  if "$PYTHON" -c '
import os, sys
os.environ["LISTEN_PID"] = str(os.getpid())
os.environ["LISTEN_FDS"] = "1"
os.execv(sys.argv[1], sys.argv[1:])' "$NBDKIT" $opt memory 1M 2>sa.err </dev/null; then
    fail "socket activation with $opt accepted"
  fi
  grep -q "socket activation" sa.err || fail "$opt: message: $(cat sa.err)"
done
echo "cmdline-compat: OK"
