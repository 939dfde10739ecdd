# sshd.sh: a private OpenSSH server on 127.0.0.1 for the tests and the
# benchmarks.  Source it, then:
#
#   sshd_start DIR [PASSWORD]
#       Make host and user keys and a config in DIR (which must exist),
#       start /usr/sbin/sshd -D -e -f DIR/sshd_config on a free port and
#       wait until it accepts connections.  Only the current user may log
#       in, with the key DIR/id_ed25519 (AuthorizedKeysFile in DIR).
#       With PASSWORD (root only, needs unshare -m and openssl), password
#       authentication is on too: sshd runs in a mount namespace where
#       /etc/shadow is a copy giving the user that password, so the
#       machine's own accounts are never touched.  Returns 77 if sshd is
#       not installed, 1 if it does not start (DIR/sshd.log says why).
#   sshd_kill      SIGKILL sshd and every session process it forked (a
#                  crash of the server, connections dropped at once)
#   sshd_restart   start it again, same port, keys and config
#   sshd_stop      stop it and its sessions (sshd_start arranges this
#                  on exit, before the tests' own cleanup)
#   ssh_run CMD    run CMD on the server with ssh(1) and the test key
#
# SSHD_SFTP_ARGS, if set before sshd_start, are options of its SFTP
# server (internal-sftp), e.g. -R for a read-only server.
#
# Variables set by sshd_start: SSHD_DIR, SSHD_PORT, SSHD_USER, SSHD_PID,
# SSHD_KEY (the user's private key), SSHD_KNOWN_HOSTS (a known hosts
# file with the server's key), SSHD_PASSWORD (empty without password
# authentication).
#
# Run directly (bash tests/services/sshd.sh DIR [PASSWORD]) it starts the
# server, prints those variables and waits until interrupted.

SSHD_BIN=${SSHD_BIN:-/usr/sbin/sshd}

# Every function here works under set -e (the tests' shell option).

# The pids of PID's children, from /proc (procps may be missing).
_sshd_children ()
{
  local f s
  for f in /proc/[0-9]*/stat; do
    read -r s 2>/dev/null < "$f" || continue
    s=${s##*) }   # after the command name, which may hold spaces
    s=${s#* }     # after the state: the parent's pid
    if [ "${s%% *}" = "$1" ]; then
      f=${f#/proc/}
      echo "${f%/stat}"
    fi
  done
  return 0
}

# The pids of PID's descendants, children first.
_sshd_descendants ()
{
  local c
  for c in $(_sshd_children "$1"); do
    echo "$c"
    _sshd_descendants "$c"
  done
  return 0
}

_sshd_free_port ()
{
  "${PYTHON:-/usr/bin/python3}" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

# Start sshd from the files in $SSHD_DIR and wait until it listens.
_sshd_launch ()
{
  local d=$SSHD_DIR i
  rm -f "$d/sshd.pid"
  if [ -n "$SSHD_PASSWORD" ]; then
    unshare -m sh -c 'mount --bind "$1/shadow" /etc/shadow && exec "$2" -D -e -f "$1/sshd_config"' \
      sh "$d" "$SSHD_BIN" </dev/null >>"$d/sshd.log" 2>&1 &
  else
    "$SSHD_BIN" -D -e -f "$d/sshd_config" </dev/null >>"$d/sshd.log" 2>&1 &
  fi
  SSHD_PID=$!
  for i in $(seq 100); do
    if [ -s "$d/sshd.pid" ] \
       && (exec 3<>"/dev/tcp/127.0.0.1/$SSHD_PORT") 2>/dev/null; then
      return 0
    fi
    kill -0 "$SSHD_PID" 2>/dev/null || break
    sleep 0.1
  done
  echo "sshd did not start; $d/sshd.log:" >&2
  cat "$d/sshd.log" >&2
  return 1
}

_sshd_write_config ()
{
  local d=$1
  cat > "$d/sshd_config" <<CONF
Port $SSHD_PORT
ListenAddress 127.0.0.1
HostKey $d/ssh_host_ed25519_key
PidFile $d/sshd.pid
AuthorizedKeysFile $d/authorized_keys
StrictModes no
AllowUsers $SSHD_USER
PermitRootLogin yes
PubkeyAuthentication yes
PasswordAuthentication $([ -n "$SSHD_PASSWORD" ] && echo yes || echo no)
KbdInteractiveAuthentication no
UsePAM no
UseDNS no
MaxStartups 100
MaxSessions 100
Subsystem sftp internal-sftp ${SSHD_SFTP_ARGS:-}
CONF
}

sshd_start ()
{
  local d pw hash
  d=$(cd "$1" && pwd) || return 1
  pw=${2:-}
  [ -x "$SSHD_BIN" ] || return 77
  SSHD_DIR=$d
  SSHD_USER=$(id -un)
  SSHD_KEY=$d/id_ed25519
  SSHD_KNOWN_HOSTS=$d/known_hosts
  SSHD_PASSWORD=

  ssh-keygen -q -t ed25519 -N '' -C sshd-test-host -f "$d/ssh_host_ed25519_key" || return 1
  ssh-keygen -q -t ed25519 -N '' -C sshd-test-user -f "$SSHD_KEY" || return 1
  cp "$SSHD_KEY.pub" "$d/authorized_keys"

  if [ -n "$pw" ] && [ "$(id -u)" = 0 ] && command -v unshare >/dev/null \
     && command -v openssl >/dev/null && unshare -m true 2>/dev/null; then
    hash=$(openssl passwd -6 "$pw") || return 1
    # The machine's shadow file with only this user's password changed.
    awk -F: -v OFS=: -v u="$SSHD_USER" -v h="$hash" \
      '$1 == u { $2 = h; $7 = ""; $8 = "" } { print }' /etc/shadow \
      > "$d/shadow" || return 1
    chmod 600 "$d/shadow"
    SSHD_PASSWORD=$pw
  fi

  # sshd running as root wants its privilege separation directory.
  if [ "$(id -u)" = 0 ] && [ ! -d /run/sshd ]; then
    mkdir -p /run/sshd && chmod 755 /run/sshd
  fi

  if declare -F _cleanup >/dev/null; then
    trap '_sshd_rc=$?; set +e; sshd_stop; (exit $_sshd_rc); _cleanup' EXIT
  else
    trap 'sshd_stop' EXIT
  fi
  # The free port may be taken by someone else before sshd binds it:
  # then try another.
  for _ in 1 2 3; do
    SSHD_PORT=$(_sshd_free_port) || return 1
    echo "[127.0.0.1]:$SSHD_PORT $(cut -d' ' -f1,2 "$d/ssh_host_ed25519_key.pub")" \
      > "$SSHD_KNOWN_HOSTS"
    _sshd_write_config "$d"
    _sshd_launch && return 0
    sshd_kill
  done
  return 1
}

sshd_kill ()
{
  local p pids
  [ -n "${SSHD_PID:-}" ] || return 0
  pids="$SSHD_PID $(_sshd_descendants "$SSHD_PID")"
  for p in $pids; do kill -9 "$p" 2>/dev/null || :; done
  for p in $pids; do
    for _ in $(seq 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
  done
  wait "$SSHD_PID" 2>/dev/null || :
  SSHD_PID=
  return 0
}

sshd_restart ()
{
  sshd_kill
  _sshd_launch
}

sshd_stop ()
{
  local p pids
  [ -n "${SSHD_PID:-}" ] || return 0
  pids="$SSHD_PID $(_sshd_descendants "$SSHD_PID")"
  for p in $pids; do kill "$p" 2>/dev/null || :; done
  for p in $pids; do
    for _ in $(seq 30); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$p" 2>/dev/null || :
  done
  wait "$SSHD_PID" 2>/dev/null || :
  SSHD_PID=
  return 0
}

ssh_run ()
{
  timeout 60 ssh -F /dev/null -p "$SSHD_PORT" -i "$SSHD_KEY" \
    -o IdentitiesOnly=yes -o BatchMode=yes -o ConnectTimeout=10 \
    -o StrictHostKeyChecking=yes -o UserKnownHostsFile="$SSHD_KNOWN_HOSTS" \
    -o GlobalKnownHostsFile=/dev/null -o LogLevel=ERROR \
    "$SSHD_USER@127.0.0.1" "$@"
}

if [ "${BASH_SOURCE[0]}" = "$0" ]; then
  [ $# -ge 1 ] || { echo "usage: $0 DIR [PASSWORD]" >&2; exit 2; }
  sshd_start "$@" || exit $?
  echo "SSHD_PORT=$SSHD_PORT SSHD_USER=$SSHD_USER SSHD_PID=$SSHD_PID"
  echo "SSHD_KEY=$SSHD_KEY SSHD_KNOWN_HOSTS=$SSHD_KNOWN_HOSTS"
  [ -n "$SSHD_PASSWORD" ] && echo "SSHD_PASSWORD=$SSHD_PASSWORD"
  trap 'exit 0' INT TERM
  wait "$SSHD_PID"
fi
