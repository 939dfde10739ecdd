# Single-node Ceph cluster for the tests: one ceph-mon and one ceph-osd
# (memstore, data in memory), no mgr, cephx on, pools of size 1, and
# optionally radosgw as an S3 endpoint.  Everything lives under a
# directory the caller gives; every daemon runs in the foreground in the
# background of this shell and is killed by ceph_stop.
#
# Usage (bash):
#
#   . "$SRCDIR/tests/services/ceph.sh"
#   ceph_start "$tmpdir/ceph" [--rgw] || exit 1
#   rbd -c "$CEPH_CONF" create --size 64M rbd/disk
#   aws/boto3 ... "$RGW_ENDPOINT" "$RGW_ACCESS_KEY" "$RGW_SECRET_KEY"
#   ceph_stop
#
# ceph_start DIR [--rgw] [--pool NAME]...
#   DIR (created if missing; keep it short: the admin sockets under it
#   must fit in 107 bytes) receives ceph.conf, the keyring, the daemons'
#   data, logs (DIR/log) and sockets (DIR/run).  A pool "rbd" is created
#   and initialised for RBD (--pool NAME adds more; --no-pool none).
#   Returns non-zero, with the tail of the failing daemon's log on stderr,
#   if the cluster does not come up within CEPH_START_TIMEOUT seconds
#   (default 30).
#
# Exported after ceph_start:
#   CEPH_DIR       DIR
#   CEPH_CONF      DIR/ceph.conf (client tools: ceph -c, rbd -c, rados -c)
#   CEPH_KEYRING   DIR/keyring, with client.admin's key (also named in
#                  ceph.conf, so -c alone is enough)
#   CEPH_MON       the monitor address, v2:127.0.0.1:PORT
#   CEPH_ARGS      "--conf DIR/ceph.conf": ceph, rbd, rados, radosgw-admin
#                  find the cluster without -c
# and with --rgw:
#   RGW_ENDPOINT   http://127.0.0.1:PORT
#   RGW_ACCESS_KEY, RGW_SECRET_KEY   keys of the S3 user "test"
#
# ceph_start also puts ceph_stop in front of the shell's EXIT trap
# (set your own trap before calling it; the exit status is kept; the
# processes registered with functions.sh's register_pid are sent
# SIGTERM first, while the cluster still answers), and
# starts a watchdog that kills the daemons if the shell dies without
# running its traps: no daemon outlives the test.
#
# ceph_stop: kill the daemons (the OSD and radosgw with SIGKILL, the
# monitor with SIGTERM, then SIGKILL after 3 s) and wait for them; safe
# to call twice or if ceph_start failed half-way.  The directory is left
# to the caller.
#
# ceph_pids: the pids of the running daemons.
#
# ceph_restart_rgw: start radosgw again on the same port (after a test
# killed it) and wait until it answers.

_ceph_pids=""
_ceph_kill_pids=""
_ceph_watchdog=""
_ceph_trapped=0

_ceph_free_port ()
{
  /usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

# _ceph_fail MSG [LOG]: report why the start failed.
_ceph_fail ()
{
  echo "ceph_start: $1" >&2
  if [ -n "${2:-}" ] && [ -f "$2" ]; then
    echo "--- last lines of $2:" >&2
    tail -n 20 "$2" >&2
  fi
  ceph_stop
  return 1
}

# _ceph_daemon LOGNAME CMD...: start CMD in the background, remember its pid.
_ceph_daemon ()
{
  local name="$1"; shift
  "$@" >>"$CEPH_DIR/log/$name.out" 2>&1 </dev/null &
  _ceph_pids="$_ceph_pids $!"
  case "$name" in osd.*|client.rgw) _ceph_kill_pids="$_ceph_kill_pids $!" ;; esac
  # Not a job of this shell: no "Killed" report when ceph_stop kills it.
  disown $!
  echo "$_ceph_pids" > "$CEPH_DIR/run/pids"
}

# _ceph_guard: make sure the daemons die with this shell.  ceph_stop
# runs first in the shell's EXIT trap (keeping the exit status for the
# trap already set, e.g. functions.sh's _cleanup), and a watchdog
# process kills the daemons if the shell is killed without running its
# traps (SIGKILL from a test driver's timeout).
_ceph_guard ()
{
  if [ $_ceph_trapped = 0 ]; then
    local old
    old="$(trap -p EXIT | sed -e "s/^trap -- '//" -e "s/' EXIT\$//")"
    # shellcheck disable=SC2064
    # set +e: under set -e, "(exit RC)" would end the trap before OLD.
    trap "_ceph_rc=\$?; set +e; _ceph_stop_clients; ceph_stop; (exit \$_ceph_rc); $old" EXIT
    _ceph_trapped=1
  fi
  local shell=$$ pidfile="$CEPH_DIR/run/pids"
  (
    trap - EXIT
    while kill -0 "$shell" 2>/dev/null; do sleep 1; done
    [ -f "$pidfile" ] && kill -9 $(cat "$pidfile") 2>/dev/null
  ) >/dev/null 2>&1 </dev/null &
  _ceph_watchdog=$!
  disown $!
}

# _ceph_stop_clients: SIGTERM the processes the test registered with
# functions.sh (register_pid: servers using the cluster) and give them
# 3 s, before the cluster goes: without it, a librados client can hang
# in its shutdown until killed.
_ceph_stop_clients ()
{
  local p
  for p in ${_pids:-}; do kill "$p" 2>/dev/null || true; done
  for _ in $(seq 30); do
    local alive=0
    for p in ${_pids:-}; do _ceph_alive "$p" && alive=1; done
    [ $alive = 0 ] && return 0
    sleep 0.1
  done
}

# _ceph_alive PID: PID runs (and is not a zombie).
_ceph_alive ()
{
  local st=""
  [ -r "/proc/$1/stat" ] || return 1
  read -r _ _ st _ < "/proc/$1/stat" 2>/dev/null || return 1
  [ "$st" != Z ]
}

ceph_pids () { echo $_ceph_pids; }

ceph_restart_rgw ()
{
  local port="${RGW_ENDPOINT##*:}"
  _ceph_daemon client.rgw radosgw -c "$CEPH_CONF" -f -n client.rgw \
    --rgw-frontends "beast endpoint=127.0.0.1:$port"
  _ceph_wait "${CEPH_START_TIMEOUT:-30}" curl -sf -o /dev/null "$RGW_ENDPOINT/"
}

ceph_stop ()
{
  local p
  # Under set -e a kill of a process already gone would end the
  # caller's shell: every kill here may fail.
  [ -z "$_ceph_watchdog" ] || kill "$_ceph_watchdog" 2>/dev/null || true
  _ceph_watchdog=""
  [ -n "$_ceph_pids" ] || return 0
  # A memstore OSD would write its whole store to disk on a clean stop,
  # and radosgw waits for the OSD: the data is thrown away, so both are
  # killed outright.
  for p in $_ceph_kill_pids; do kill -9 "$p" 2>/dev/null || true; done
  for p in $_ceph_pids; do kill "$p" 2>/dev/null || true; done
  for _ in $(seq 30); do
    local alive=0
    for p in $_ceph_pids; do _ceph_alive "$p" && alive=1; done
    [ $alive = 0 ] && break
    sleep 0.1
  done
  for p in $_ceph_pids; do
    if _ceph_alive "$p"; then kill -9 "$p" 2>/dev/null || true; fi
  done
  _ceph_pids=""
  _ceph_kill_pids=""
  rm -f "$CEPH_DIR/run/pids"
  return 0
}

# _ceph_wait SECONDS CMD...: retry CMD every 0.1 s until it succeeds.
_ceph_wait ()
{
  local end=$(( $(date +%s) + $1 )); shift
  while ! "$@" >/dev/null 2>&1; do
    [ "$(date +%s)" -lt "$end" ] || return 1
    sleep 0.1
  done
}

ceph_start ()
{
  local dir="" rgw=0 pools="rbd" timeout="${CEPH_START_TIMEOUT:-30}"
  while [ $# -gt 0 ]; do
    case "$1" in
      --rgw) rgw=1 ;;
      --pool) pools="$pools $2"; shift ;;
      --no-pool) pools="" ;;
      -*) echo "ceph_start: unknown option $1" >&2; return 1 ;;
      *) dir="$1" ;;
    esac
    shift
  done
  [ -n "$dir" ] || { echo "ceph_start: no directory given" >&2; return 1; }
  command -v ceph-mon >/dev/null || { echo "ceph_start: ceph-mon not installed" >&2; return 1; }
  mkdir -p "$dir"
  CEPH_DIR="$(cd "$dir" && pwd)"
  mkdir -p "$CEPH_DIR/log" "$CEPH_DIR/run" "$CEPH_DIR/mon" "$CEPH_DIR/osd/0"

  local fsid osd_uuid mon_port base
  fsid="$(cat /proc/sys/kernel/random/uuid)"
  osd_uuid="$(cat /proc/sys/kernel/random/uuid)"
  mon_port="$(_ceph_free_port)"
  # The OSD binds its messengers in this window, skipping busy ports.
  base=$(( 20000 + RANDOM % 10000 ))
  CEPH_MON="v2:127.0.0.1:$mon_port"
  CEPH_CONF="$CEPH_DIR/ceph.conf"
  CEPH_KEYRING="$CEPH_DIR/keyring"

  cat > "$CEPH_CONF" <<CONF
[global]
fsid = $fsid
mon host = [$CEPH_MON]
public addr = 127.0.0.1
cluster addr = 127.0.0.1
ms bind msgr1 = false
ms bind port min = $base
ms bind port max = $(( base + 200 ))
auth cluster required = cephx
auth service required = cephx
auth client required = cephx
keyring = $CEPH_KEYRING
run dir = $CEPH_DIR/run
log file = $CEPH_DIR/log/\$name.log
pid file = $CEPH_DIR/run/\$name.pid
crash dir = $CEPH_DIR/crash
log to stderr = false
err to stderr = true
osd pool default size = 1
osd pool default min size = 1
osd pool default pg num = 8
osd pool default pgp num = 8
osd pool default pg autoscale mode = off
osd crush chooseleaf type = 0
mon allow pool size one = true
mon allow pool delete = true
mon warn on pool no redundancy = false
mon data avail warn = 1
mon data avail crit = 0
mon pg warn min per osd = 0
mon max pg per osd = 1000
client mount timeout = 10
rados mon op timeout = 10
paxos propose interval = 0.01
paxos min wait = 0.01
mon osd reporter subtree level = osd

[mon]
admin socket = $CEPH_DIR/run/\$name.asok
mon data = $CEPH_DIR/mon/\$name
mon cluster log file = $CEPH_DIR/log/cluster.log

[osd]
admin socket = $CEPH_DIR/run/\$name.asok
osd data = $CEPH_DIR/osd/\$id
osd objectstore = memstore
memstore device bytes = $(( 1 << 30 ))
osd op num shards = 1
osd op num threads per shard = 2
osd fast shutdown = true

[client.rgw]
admin socket = $CEPH_DIR/run/\$name.asok
rgw data = $CEPH_DIR/rgw
rgw dns name = 127.0.0.1
rgw enable usage log = false
rgw crypt require ssl = false
CONF

  local out="$CEPH_DIR/log/setup.out"
  # One keyring for every entity: the monitor imports the keys and caps
  # at mkfs, so the OSD and the admin need no ceph auth call later.
  {
    ceph-authtool --create-keyring "$CEPH_KEYRING" --gen-key -n mon. --cap mon 'allow *' &&
    ceph-authtool "$CEPH_KEYRING" --gen-key -n client.admin \
      --cap mon 'allow *' --cap osd 'allow *' --cap mgr 'allow *' --cap mds 'allow *' &&
    ceph-authtool "$CEPH_KEYRING" --gen-key -n osd.0 \
      --cap mon 'allow profile osd' --cap osd 'allow *' --cap mgr 'allow profile osd' &&
    ceph-authtool "$CEPH_KEYRING" --gen-key -n client.rgw \
      --cap mon 'allow rw' --cap osd 'allow rwx' &&
    monmaptool --create --fsid "$fsid" --addv a "[$CEPH_MON]" "$CEPH_DIR/monmap" &&
    ceph-mon -c "$CEPH_CONF" --mkfs -i a --monmap "$CEPH_DIR/monmap" --keyring "$CEPH_KEYRING"
  } >"$out" 2>&1 || { _ceph_fail "monitor setup failed" "$out"; return 1; }

  _ceph_guard
  _ceph_daemon mon.a ceph-mon -c "$CEPH_CONF" -f -i a
  # The OSD's store is made while the monitor starts.
  ceph-osd -c "$CEPH_CONF" -i 0 --mkfs --osd-uuid "$osd_uuid" >>"$out" 2>&1 ||
    { _ceph_fail "ceph-osd --mkfs failed" "$out"; return 1; }
  export CEPH_ARGS="--conf $CEPH_CONF"
  ceph --connect-timeout "$timeout" osd new "$osd_uuid" 0 >>"$out" 2>&1 ||
    { _ceph_fail "monitor did not answer (ceph osd new)" "$CEPH_DIR/log/mon.a.log"; return 1; }
  _ceph_daemon osd.0 ceph-osd -c "$CEPH_CONF" -f -i 0
  local p
  for p in $pools; do
    timeout "$timeout" ceph osd pool create "$p" 8 8 >>"$out" 2>&1 &&
    timeout "$timeout" ceph osd pool application enable "$p" rbd >>"$out" 2>&1 ||
      { _ceph_fail "creating pool $p failed" "$out"; return 1; }
  done
  # Up when an object can be written through the OSD to the first pool.
  if [ -n "$pools" ]; then
    set -- $pools
    rados --rados-osd-op-timeout "$timeout" -p "$1" put ceph-start-probe /dev/null >>"$out" 2>&1 &&
      rados -p "$1" rm ceph-start-probe >>"$out" 2>&1 ||
      { _ceph_fail "the OSD did not come up" "$CEPH_DIR/log/osd.0.log"; return 1; }
  fi
  export CEPH_DIR CEPH_CONF CEPH_KEYRING CEPH_MON
  [ $rgw = 1 ] || return 0
  _ceph_start_rgw "$timeout"
}

# _ceph_start_rgw TIMEOUT: radosgw on a free port, and an S3 user.
_ceph_start_rgw ()
{
  local timeout="$1" port out="$CEPH_DIR/log/setup.out" keys
  port="$(_ceph_free_port)"
  mkdir -p "$CEPH_DIR/rgw"
  _ceph_daemon client.rgw radosgw -c "$CEPH_CONF" -f -n client.rgw \
    --rgw-frontends "beast endpoint=127.0.0.1:$port"
  keys="$(timeout "$timeout" radosgw-admin user create --uid test --display-name test 2>>"$out" |
          /usr/bin/python3 -c 'import json,sys; k=json.load(sys.stdin)["keys"][0]; print(k["access_key"], k["secret_key"])')" ||
    { _ceph_fail "radosgw-admin user create failed" "$out"; return 1; }
  RGW_ACCESS_KEY="${keys% *}"
  RGW_SECRET_KEY="${keys#* }"
  RGW_ENDPOINT="http://127.0.0.1:$port"
  # Up when it answers HTTP (an anonymous list of buckets).
  _ceph_wait "$timeout" curl -sf -o /dev/null "$RGW_ENDPOINT/" ||
    { _ceph_fail "radosgw did not answer on $RGW_ENDPOINT" "$CEPH_DIR/log/client.rgw.log"; return 1; }
  export RGW_ENDPOINT RGW_ACCESS_KEY RGW_SECRET_KEY
}
