#!/usr/bin/env bash
# nbd plugin: ways of reaching the backend.  TLS with a pre-shared key,
# command= (a server run as a subprocess), retry= for a backend that
# comes up late, and clear errors when it cannot be reached.
. "$(dirname "$0")/functions.sh"
requires nbdsh
cd "$tmpdir"

# TLS PSK to the backend.
if command -v psktool >/dev/null; then
  psktool -u alice -p keys.psk >/dev/null
  start_nbdkit tlsbk --tls=require --tls-psk="$tmpdir/keys.psk" memory 1M
  tls_sock="$sock"
  start_nbdkit tlspx nbd socket="$tls_sock" tls=require \
    tls-psk="$tmpdir/keys.psk" tls-username=alice
  nbdsh_u "$uri" -c 'h.pwrite(b"secret", 10); assert h.pread(6, 10) == b"secret"'
  # The backend holds it (read with TLS directly).
  tls_uri="nbds+unix://alice@/?socket=$tls_sock&tls-psk-file=$tmpdir/keys.psk"
  t nbdsh -c "h.set_uri_allow_local_file(True); h.connect_uri('$tls_uri')" \
    -c 'assert h.pread(6, 10) == b"secret"'
  # The same through uri= (nbds: TLS required, the key file in the URI).
  start_nbdkit tlsuri nbd "$tls_uri"
  nbdsh_u "$uri" -c 'assert h.pread(6, 10) == b"secret"'
  # Without TLS the backend refuses, and the client gets an error.
  start_nbdkit notls nbd socket="$tls_sock" 2> notls.err
  if t nbdsh -u "$uri" -c 'h.pread(1, 0)' 2>/dev/null; then
    fail "connected to a TLS-only backend without TLS"
  fi
  grep -q "socket=$tls_sock" notls.err || { cat notls.err; fail "no error naming the socket"; }
else
  note "psktool missing: TLS part skipped"
fi

# command=: our own server with the memory plugin as a subprocess.
start_nbdkit cmdpx nbd command="$NBDKIT" arg=memory arg=2M
nbdsh_u "$uri" -c '
assert h.get_size() == 2 << 20
h.pwrite(b"via command", 5000)
'
# shared: a second client sees the same subprocess's data.
nbdsh_u "$uri" -c 'assert h.pread(11, 5000) == b"via command"'
cmd_pid=$pid
stop_nbdkit "$cmd_pid"

# socket-fd=: a socket already connected to the backend, inherited.
start_nbdkit fdbk memory 1M
fd_back="$sock"
"$PYTHON" -c '
import os, socket, sys
s = socket.socket(socket.AF_UNIX)
s.connect(sys.argv[1])
fd = s.fileno()
os.set_inheritable(fd, True)
os.execv(sys.argv[2], [sys.argv[2], "-U", sys.argv[3], "-P", sys.argv[4], "-f",
                       "nbd", "socket-fd=%d" % fd])
' "$fd_back" "$NBDKIT" "$tmpdir/fdpx.sock" "$tmpdir/fdpx.pid" &
register_pid $!
wait_for_file fdpx.pid || fail "socket-fd proxy did not start"
nbdsh_u "nbd+unix:///?socket=$tmpdir/fdpx.sock" -c 'h.pwrite(b"by fd", 0)'
nbdsh_u "nbd+unix:///?socket=$fd_back" -c 'assert h.pread(5, 0) == b"by fd"'

# The man page's qemu-nbd example.
if command -v qemu-nbd >/dev/null && command -v qemu-img >/dev/null; then
  qemu-img create -q -f qcow2 disk.qcow2 4M
  start_nbdkit qpx nbd command=qemu-nbd arg=-f arg=qcow2 \
    arg="$tmpdir/disk.qcow2"
  nbdsh_u "$uri" -c 'h.pwrite(b"qcow", 0); h.flush()'
  stop_nbdkit "$pid"
  qemu-img convert -f qcow2 -O raw disk.qcow2 raw.img
  assert_eq "qcow2 data" "$(head -c 4 raw.img)" "qcow"
fi

# retry=: the backend's socket appears two seconds after the client
# connected to the proxy.
start_nbdkit retrypx nbd socket="$tmpdir/late.sock" retry=10
retry_uri="$uri"
( sleep 2; exec "$NBDKIT" -U "$tmpdir/late.sock" -P late.pid -f memory 1M ) &
register_pid $!
register_pidfile "$tmpdir/late.pid"
nbdsh_u "$retry_uri" -c 'assert h.get_size() == 1 << 20'
# Without retry= the same failure is immediate.
start_nbdkit noretry nbd socket="$tmpdir/never.sock" 2> never.err
if t nbdsh -u "$uri" -c 'h.get_size()' 2>/dev/null; then
  fail "connected to a socket that does not exist"
fi
grep -q "socket=$tmpdir/never.sock" never.err ||
  { cat never.err; fail "no error naming the socket"; }

# An unreachable backend in shared mode: the server does not start, and
# says where it tried.
if t "$NBDKIT" -U "$tmpdir/x.sock" -f nbd uri="nbd+unix:///?socket=$tmpdir/none.sock" \
     shared=true 2> shared.err; then
  fail "server started with an unreachable shared backend"
fi
grep -q "uri=nbd+unix:///?socket=$tmpdir/none.sock" shared.err ||
  { cat shared.err; fail "no error naming the uri"; }

# Bad combinations are refused at start, naming the keys.
if "$NBDKIT" -U x.sock -f nbd socket=a hostname=b 2> both.err; then
  fail "two targets accepted"
fi
grep -q "exactly one" both.err || { cat both.err; fail "unclear error"; }
if "$NBDKIT" -U x.sock -f nbd command=true shared=false 2> cs.err; then
  fail "command= with shared=false accepted"
fi
echo "nbd-plugin-connect: OK"
