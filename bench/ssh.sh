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
# (MiB/s), the ratio ours / nbdkit, and the median CPU seconds each run
# cost the NBD server and sshd (its sessions, reaped by the listener):
# on a loaded machine these move less than the rates.
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
# CPU seconds (user + system) of PID; with "children", of its reaped
# descendants.
cpu () {
  awk -v c="${2:-}" '{ print (c == "children" ? $16 + $17 : $14 + $15) / 100 }' \
    "/proc/$1/stat"
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

# One timed workload: prints MiB/s, server CPU s, sshd CPU s.
run () {
  local t0 t1 u="nbd+unix:///?socket=$tmp/sock" c=()
  case $1 in *-1c) c=(-C 1 -T 1) ;; esac
  local s0 s1 n
  s0=$(cpu "$SSHD_PID" children)
  t0=$(date +%s.%N)
  case $1 in
    read*) nbdcopy --no-extents "${c[@]}" "$u" null: ;;
    write*) nbdcopy "${c[@]}" "$tmp/src.img" "$u" ;;
  esac
  t1=$(date +%s.%N)
  n=$(cpu "$pid")
  stop
  # The sessions end with the server: wait until sshd has reaped them.
  for _ in $(seq 50); do
    [ -z "$(_sshd_children "$SSHD_PID")" ] && break
    sleep 0.1
  done
  s1=$(cpu "$SSHD_PID" children)
  echo "$size_mib $t0 $t1 $n $s0 $s1" \
    | awk '{ printf "%.1f %.2f %.2f\n", $1 / ($3 - $2), $4, $6 - $5 }'
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
      pid="" # stopped by run, in its subshell
      echo "$v" >> "$tmp/$s.$w"
      line="$line $(echo "$s $v" | awk '{ printf "%s %s MiB/s (cpu %s + sshd %s s)", $1, $2, $3, $4 }')"
    done
    echo "$line"
  done
  # The data must have arrived (writes) and come back the same (reads).
  cmp -s "$tmp/src.img" "$tmp/disk.img" \
    || { echo "bench/ssh: the remote file differs from the source" >&2; exit 1; }
done
echo
printf "%-9s %11s %13s %6s   %s\n" workload "ours MiB/s" "nbdkit MiB/s" ratio \
  "CPU s: ours + its sshd, nbdkit + its sshd"
col () { awk -v k="$1" '{ print $k }' "$2" | median; }
for w in $workloads; do
  mo=$(col 1 "$tmp/ours.$w")
  mn=$(col 1 "$tmp/nbdkit.$w")
  printf "%-9s %11.1f %13.1f %6.2f   %.2f + %.2f, %.2f + %.2f\n" "$w" "$mo" "$mn" \
    "$(echo "$mo $mn" | awk '{ print $1 / $2 }')" \
    "$(col 2 "$tmp/ours.$w")" "$(col 3 "$tmp/ours.$w")" \
    "$(col 2 "$tmp/nbdkit.$w")" "$(col 3 "$tmp/nbdkit.$w")"
done
