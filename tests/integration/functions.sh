# Shared helpers for the integration tests.  Each test sources this file:
#
#   . "$(dirname "$0")/functions.sh"
#
# Environment (ctest sets all of these):
#   NBDKIT    the server binary under test (default: ./nbdkit in BUILDDIR)
#   OURS=1    the server is ours: run tests of behaviour Debian's nbdkit lacks
#   SRCDIR    the source tree root, BUILDDIR the build tree root
#   PYTHON    a python3 that has the libnbd `nbd` module
#
# Exit codes: 0 pass, 77 skip, anything else fail.

set -e
set -u

# nbdsh and the python tests need the system python3 (python3-libnbd is
# installed for it), not a pyenv or virtualenv one that may come first.
export PATH=/usr/bin:/bin:/usr/sbin:/sbin:$PATH
: "${PYTHON:=/usr/bin/python3}"
: "${BUILDDIR:=.}"
: "${NBDKIT:=$BUILDDIR/nbdkit}"
: "${OURS:=0}"
# Tests may cd; make the binary path absolute.
case "$NBDKIT" in
  */*) NBDKIT="$(cd "$(dirname "$NBDKIT")" && pwd)/$(basename "$NBDKIT")" ;;
esac
export NBDKIT PYTHON OURS
# Debian's nbdkit is never "ours", whatever OURS says.
if [ "$NBDKIT" = /usr/bin/nbdkit ]; then OURS=0; fi

testname="$(basename "$0")"
tmpdir="$(mktemp -d "${TMPDIR:-/tmp}/nbdtest.XXXXXX")"
_pids=""
_pidfiles=""

skip () { echo "$testname: SKIP: $*"; exit 77; }
fail () { echo "$testname: FAIL: $*" >&2; exit 1; }
note () { echo "$testname: $*"; }

# Kill every server the test started, then remove the temp dir.
_cleanup ()
{
  local rc=$? p
  set +e
  for f in $_pidfiles; do
    if [ -s "$f" ]; then _pids="$_pids $(cat "$f")"; fi
  done
  for p in $_pids; do kill "$p" 2>/dev/null; done
  for p in $_pids; do
    for _ in $(seq 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$p" 2>/dev/null
  done
  rm -rf "$tmpdir"
  exit $rc
}
trap _cleanup EXIT
trap 'exit 1' INT TERM

# requires CMD [ARGS...]: skip the test unless CMD exists (and, given
# ARGS, unless running it succeeds).
requires ()
{
  command -v "$1" >/dev/null 2>&1 || skip "$1 not found"
  if [ $# -gt 1 ]; then
    "$@" >/dev/null 2>&1 </dev/null || skip "'$*' failed"
  fi
}

# requires_ours: skip unless the server is ours (OURS=1, not Debian's).
requires_ours ()
{
  [ "$OURS" = 1 ] || skip "tests behaviour only our server has (OURS!=1)"
}

requires_python_nbd ()
{
  "$PYTHON" -c 'import nbd' 2>/dev/null || skip "python3 nbd module missing"
}

# register_pid PID: kill PID on exit.
register_pid () { _pids="$_pids $1"; }
register_pidfile () { _pidfiles="$_pidfiles $1"; }

# wait_for_file FILE [TENTHS]: wait until FILE exists and is non-empty.
wait_for_file ()
{
  local i
  for i in $(seq "${2:-100}"); do
    [ -s "$1" ] && return 0
    sleep 0.1
  done
  return 1
}

# start_nbdkit NAME [NBDKIT ARGS...]: start a foreground server on the
# Unix socket $tmpdir/NAME.sock with pidfile $tmpdir/NAME.pid, wait until
# it is ready, and set $sock, $pid and $uri.
start_nbdkit ()
{
  local name="$1"; shift
  sock="$tmpdir/$name.sock"
  local pidfile="$tmpdir/$name.pid"
  rm -f "$sock" "$pidfile"
  "$NBDKIT" -U "$sock" -P "$pidfile" -f "$@" &
  pid=$!
  register_pid "$pid"
  if ! wait_for_file "$pidfile" 100; then
    fail "server '$name' did not write its pidfile: $NBDKIT $*"
  fi
  kill -0 "$pid" 2>/dev/null || fail "server '$name' died at start"
  [ -S "$sock" ] || fail "server '$name': no socket $sock"
  uri="nbd+unix:///?socket=$sock"
}

# stop_nbdkit PID: SIGTERM and wait (bounded) for it to exit.
stop_nbdkit ()
{
  kill "$1" 2>/dev/null || true
  for _ in $(seq 100); do kill -0 "$1" 2>/dev/null || return 0; sleep 0.1; done
  kill -9 "$1" 2>/dev/null || true
  return 1
}

# Bounded command runner: every client call goes through this.
t () { timeout 30 "$@"; }

# nbdsh_py URI SCRIPT: run python SCRIPT in nbdsh connected to URI.
nbdsh_u () { local u="$1"; shift; t nbdsh -u "$u" "$@"; }

# assert_eq WHAT GOT EXPECTED
assert_eq ()
{
  [ "$2" = "$3" ] || fail "$1: got '$2', expected '$3'"
}

# free_port: print a free TCP port on 127.0.0.1.
free_port ()
{
  "$PYTHON" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

cd "$tmpdir"

# requires_rawclient: set $NBD_RAW to the nbd-raw test client, or skip.
requires_rawclient ()
{
  : "${NBD_RAW:=$BUILDDIR/tests/rawclient/nbd-raw}"
  [ -x "$NBD_RAW" ] || skip "nbd-raw not built ($NBD_RAW)"
}

# raw [LINE...]: run nbd-raw on $sock; output in raw.out (and on stdout).
# The exit status is nbd-raw's.  RAW_TIMEOUT bounds each read (seconds).
raw ()
{
  local rc=0
  timeout 30 "$NBD_RAW" -t "${RAW_TIMEOUT:-10}" "$sock" "$@" > raw.out || rc=$?
  sed 's/^/  | /' raw.out
  return $rc
}

# expect_line REGEX: raw.out has a line matching the extended REGEX.
expect_line ()
{
  grep -Eq "$1" raw.out || fail "no line matching /$1/ in nbd-raw output"
}

# server_alive: the server at $uri still answers a fresh client.
server_alive ()
{
  kill -0 "$pid" 2>/dev/null || fail "server died"
  t nbdinfo --size "$uri" >/dev/null || fail "server no longer answers"
}
