#!/usr/bin/env bash
# Sequential read and write through the ssh plugin: this server against
# Debian's nbdkit ssh plugin, the same private sshd
# (tests/services/sshd.sh, internal-sftp) serving the same file on
# tmpfs, in the same run.  Workloads, each with nbdcopy:
#   read     nbdcopy --no-extents URI null:          (nbdcopy's defaults:
#            4 connections when multi-conn is offered, as both do)
#   write    nbdcopy SRC URI                         (ends with a flush)
#   read-1c  read with -C 1 -T 1 (one connection, one SSH session)
#   write-1c write with -C 1 -T 1
# Servers alternate round by round; prints each round, then medians
# (MiB/s) and the ratio ours / nbdkit.
#
#   bench/ssh.sh [-r ROUNDS] [-s SIZE_MIB] [-b BUILDDIR] [-w WORKLOADS]
#
# Environment: NBDKIT_OTHER (default /usr/bin/nbdkit).
set -euo pipefail
export PATH=/usr/bin:/bin:/usr/sbin:/sbin:$PATH
export LC_ALL=C

rounds=5
size_mib=128
builddir=build
workloads="read write read-1c write-1c"
while getopts "r:s:b:w:" o; do
  case $o in
    r) rounds=$OPTARG ;;
    s) size_mib=$OPTARG ;;
    b) builddir=$OPTARG ;;
    w) workloads=$OPTARG ;;
    *) sed -n '2,17p' "$0"; exit 2 ;;
  esac
done
cd "$(dirname "$0")/.."
src=$(pwd)
ours=$(realpath "$builddir/nbdkit")
other=${NBDKIT_OTHER:-/usr/bin/nbdkit}
for c in "$other" nbdcopy ssh-keygen /usr/sbin/sshd; do
  command -v "$c" >/dev/null || { echo "bench/ssh: $c is needed" >&2; exit 2; }
done

tmp=$(mktemp -d /dev/shm/nbdssh.XXXXXX)
pid=""
stop () {
  if [ -n "$pid" ]; then
    kill "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  fi
  pid=""
}
. "$src/tests/services/sshd.sh"
mkdir "$tmp/sshd"
sshd_start "$tmp/sshd" || { echo "bench/ssh: sshd did not start" >&2; exit 1; }
trap 'stop; sshd_stop; rm -rf "$tmp"' EXIT

head -c $((size_mib << 20)) /dev/urandom > "$tmp/src.img"
cp "$tmp/src.img" "$tmp/disk.img"
args=(host=127.0.0.1 port="$SSHD_PORT" user="$SSHD_USER" config=
      identity="$SSHD_KEY" known-hosts="$SSHD_KNOWN_HOSTS" "$tmp/disk.img")

# start SERVER: serve $tmp/disk.img on $tmp/sock.
start () {
  local bin
  [ "$1" = ours ] && bin=$ours || bin=$other
  rm -f "$tmp/sock" "$tmp/pid"
  "$bin" -U "$tmp/sock" -P "$tmp/pid" -f ssh "${args[@]}" \
    2>>"$tmp/server.log" &
  pid=$!
  for _ in $(seq 100); do [ -s "$tmp/pid" ] && break; sleep 0.1; done
  [ -s "$tmp/pid" ] || { echo "bench/ssh: $1 did not start" >&2; exit 1; }
}

# One timed workload: prints MiB/s.
run () {
  local t0 t1 u="nbd+unix:///?socket=$tmp/sock" c=()
  case $1 in *-1c) c=(-C 1 -T 1) ;; esac
  t0=$(date +%s.%N)
  case $1 in
    read*) nbdcopy --no-extents "${c[@]}" "$u" null: ;;
    write*) nbdcopy "${c[@]}" "$tmp/src.img" "$u" ;;
  esac
  t1=$(date +%s.%N)
  echo "$size_mib $t0 $t1" | awk '{ printf "%.1f\n", $1 / ($3 - $2) }'
}

median () { sort -n | awk '{ a[NR] = $1 } END { print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2 }'; }

echo "bench/ssh: ${size_mib} MiB file on tmpfs, $rounds rounds, sshd $("$SSHD_BIN" -V 2>&1 | head -1)"
echo "  ours:   $ours"
echo "  nbdkit: $other ($("$other" --version | head -1))"
for w in $workloads; do
  : > "$tmp/ours.$w"
  : > "$tmp/nbdkit.$w"
  for r in $(seq "$rounds"); do
    line="  $w round $r:"
    for s in ours nbdkit; do
      start "$s"
      v=$(run "$w")
      stop
      echo "$v" >> "$tmp/$s.$w"
      line="$line $s $v MiB/s"
    done
    echo "$line"
  done
  # The data must have arrived (writes) and come back the same (reads).
  cmp -s "$tmp/src.img" "$tmp/disk.img" \
    || { echo "bench/ssh: the remote file differs from the source" >&2; exit 1; }
done
echo
printf "%-9s %12s %12s %8s\n" workload "ours MiB/s" "nbdkit MiB/s" ratio
for w in $workloads; do
  mo=$(median < "$tmp/ours.$w")
  mn=$(median < "$tmp/nbdkit.$w")
  printf "%-9s %12.1f %12.1f %8.2f\n" "$w" "$mo" "$mn" \
    "$(echo "$mo $mn" | awk '{ print $1 / $2 }')"
done
