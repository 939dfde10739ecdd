#!/usr/bin/env bash
# Sequential read throughput over TLS: this server against Debian's
# nbdkit, same certificates (and same PSK), side by side.  Each serves a
# 1 GiB memory export filled with random data; the client is
#   nbdcopy --no-extents nbds+unix:///?socket=...&tls-certificates=DIR null:
# (and the PSK form with tls-psk-file=), server and client pinned with
# taskset to one CPU, servers alternating round by round.  Prints each
# round, the medians (MiB/s) and the ratio ours / nbdkit (target >= 1.0).
#
#   bench/tls.sh [-r ROUNDS] [-s SIZE_MIB] [-b BUILDDIR] [-m x509|psk|both]
#   bench/tls.sh -a -B OTHERBUILD [-r ROUNDS] [-s SIZE_MIB] [-b BUILDDIR]
#                [-t SECONDS] [-d DEPTH]
#
# -a: asynchronous completions over TLS (X.509), this build against
# another build of this server (-B, e.g. one of an older commit; Debian's
# nbdkit cannot load the test plugin).  Each serves the test plugin
# tests/plugins/asyncplug (threads=2: requests completed by the plugin's
# own threads) filled with random data; clients, pinned with the server:
#   fio --ioengine=nbd --rw=randread --bs=4k --iodepth=DEPTH (64) for SECONDS
#   (IOPS; libnbd finds the client certificates in $HOME/.pki/libnbd)
#   nbdcopy --no-extents URI null: (MiB/s)
# and the server's CPU time during each (per read, per GiB).
#
# Environment: CPU (default 0), NBDKIT_OTHER (default /usr/bin/nbdkit).
set -euo pipefail
export PATH=/usr/bin:/bin:/usr/sbin:/sbin:$PATH
export LC_ALL=C

rounds=5
size_mib=1024
builddir=build
modes=both
async=false
otherbuild=""
secs=10
depth=64
while getopts "r:s:b:m:aB:t:d:" o; do
  case $o in
    r) rounds=$OPTARG ;;
    s) size_mib=$OPTARG ;;
    b) builddir=$OPTARG ;;
    m) modes=$OPTARG ;;
    a) async=true ;;
    B) otherbuild=$OPTARG ;;
    t) secs=$OPTARG ;;
    d) depth=$OPTARG ;;
    *) sed -n '2,28p' "$0"; exit 2 ;;
  esac
done
if $async; then
  [ -n "$otherbuild" ] || { echo "bench/tls: -a needs -B OTHERBUILD" >&2; exit 2; }
  [ "${size_mib}" = 1024 ] && size_mib=256
  modes=x509
fi
[ "$modes" = both ] && modes="x509 psk"
cd "$(dirname "$0")/.."
ours=$(realpath "$builddir/nbdkit")
other=${NBDKIT_OTHER:-/usr/bin/nbdkit}
plugin=memory
plugin_args=("${size_mib}M")
if $async; then
  other=$(realpath "$otherbuild/nbdkit")
  plugin=$(realpath "$builddir/tests/plugins/nbdkit-asyncplug-plugin.so")
  otherplugin=$(realpath "$otherbuild/tests/plugins/nbdkit-asyncplug-plugin.so")
  plugin_args=("size=$((size_mib << 20))" threads=2)
  command -v fio >/dev/null || { echo "bench/tls: fio is needed" >&2; exit 2; }
fi
cpu=${CPU:-0}
pin="taskset -c $cpu"
for c in "$other" nbdcopy taskset certtool psktool; do
  command -v "$c" >/dev/null || { echo "bench/tls: $c is needed" >&2; exit 2; }
done

tmp=$(mktemp -d /dev/shm/nbdtls.XXXXXX)
pid=""
stop () {
  if [ -n "$pid" ]; then
    kill "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  fi
  pid=""
}
trap 'stop; rm -rf "$tmp"' EXIT

bash tests/integration/tls-functions.sh make-pki "$tmp" \
  || { echo "bench/tls: cannot make the PKI" >&2; exit 2; }
. "$tmp/pki.env"
head -c $((size_mib << 20)) /dev/urandom > "$tmp/src.img"

# start SERVER MODE: the server on $tmp/sock, filled with src.img.
start () {
  local bin creds plug=$plugin
  [ "$1" = ours ] && bin=$ours || bin=$other
  if $async && [ "$1" != ours ]; then plug=$otherplugin; fi
  if [ "$2" = psk ]; then creds="--tls-psk=$psk"
  else creds="--tls-certificates=$pki"; fi
  rm -f "$tmp/sock" "$tmp/pid"
  $pin "$bin" -U "$tmp/sock" -P "$tmp/pid" -f --tls=require "$creds" \
    "$plug" "${plugin_args[@]}" 2>>"$tmp/server.log" &
  pid=$!
  for _ in $(seq 100); do [ -s "$tmp/pid" ] && break; sleep 0.1; done
  [ -s "$tmp/pid" ] || { echo "bench/tls: $1 did not start" >&2; exit 1; }
  nbdcopy "$tmp/src.img" "$(uri "$2")"
}

uri () {
  if [ "$1" = psk ]; then
    echo "nbds+unix://alice@/?socket=$tmp/sock&tls-psk-file=$psk"
  else
    echo "nbds+unix:///?socket=$tmp/sock&tls-certificates=$clientpki"
  fi
}

# One timed read of the whole export: prints MiB/s.
run () {
  local t0 t1
  t0=$(date +%s.%N)
  $pin nbdcopy --no-extents "$(uri "$1")" null:
  t1=$(date +%s.%N)
  echo "$size_mib $t0 $t1" | awk '{ printf "%.1f\n", $1 / ($3 - $2) }'
}

# The server's CPU time so far, in clock ticks (user + system).
cpu_ticks () { awk '{ print $14 + $15 }' "/proc/$(cat "$tmp/pid")/stat"; }

# -a: random 4 KiB reads at depth $depth, then a sequential copy; prints
# "IOPS US_CPU_PER_READ MIB/S S_CPU_PER_GIB" (the server's CPU time).
run_async () {
  local iops mibs c0 c1 c2 hz
  hz=$(getconf CLK_TCK)
  c0=$(cpu_ticks)
  iops=$(HOME=$tmp/home $pin fio --name=r --ioengine=nbd \
           --uri="nbds+unix:///?socket=$tmp/sock" --rw=randread --bs=4k \
           --iodepth="$depth" --size="${size_mib}M" --time_based --runtime="$secs" \
           --output-format=terse 2>/dev/null | awk -F';' '$1 == 3 { print $8 }')
  c1=$(cpu_ticks)
  mibs=$(run x509)
  c2=$(cpu_ticks)
  echo "$iops $c0 $c1 $c2 $hz $secs $mibs $size_mib" | awk '{
    printf "%d %.1f %.1f %.2f\n", $1, ($3 - $2) / $5 * 1e6 / ($1 * $6),
      $7, ($4 - $3) / $5 * 1024 / $8 }'
}

median () { sort -n | awk '{ a[NR] = $1 } END { print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2 }'; }

if $async; then
  mkdir -p "$tmp/home/.pki"
  cp -r "$clientpki" "$tmp/home/.pki/libnbd"
  echo "bench/tls -a: ${size_mib} MiB asyncplug export (threads=2), X.509," \
    "$rounds rounds, CPU $cpu"
  echo "  ours:  $ours"
  echo "  other: $other"
  echo "  clients: $pin fio --ioengine=nbd --rw=randread --bs=4k" \
    "--iodepth=$depth --runtime=$secs; $pin nbdcopy --no-extents URI null:"
  for s in ours other; do
    for k in iops cpuread seq cpugib; do : > "$tmp/$s.$k"; done
  done
  for r in $(seq "$rounds"); do
    line="  round $r:"
    for s in ours other; do
      start "$s" x509
      read -r iops cpuread mibs cpugib < <(run_async)
      stop
      for k in iops cpuread mibs cpugib; do
        echo "${!k}" >> "$tmp/$s.${k/mibs/seq}"
      done
      line="$line $s $iops IOPS ${cpuread} us/read, $mibs MiB/s ${cpugib} s/GiB;"
    done
    echo "$line"
  done
  echo "  (us/read, s/GiB: the server's CPU time per 4 KiB read, per GiB copied)"
  for k in iops cpuread seq cpugib; do
    mo=$(median < "$tmp/ours.$k")
    mn=$(median < "$tmp/other.$k")
    printf "%-7s median: ours %9.2f  other %9.2f  ratio %.3f\n" \
      "$k" "$mo" "$mn" "$(echo "$mo $mn" | awk '{ print $1 / $2 }')"
  done
  exit 0
fi

echo "bench/tls: ${size_mib} MiB memory export, $rounds rounds, CPU $cpu"
echo "  ours:   $ours"
echo "  nbdkit: $other ($("$other" --version | head -1))"
echo "  client: $pin nbdcopy --no-extents URI null:"
for mode in $modes; do
  echo "  $mode URI: $(uri "$mode" | sed "s|$tmp|\$tmp|g")"
  : > "$tmp/ours.$mode"
  : > "$tmp/nbdkit.$mode"
  for r in $(seq "$rounds"); do
    line="  $mode round $r:"
    for s in ours nbdkit; do
      start "$s" "$mode"
      v=$(run "$mode")
      stop
      echo "$v" >> "$tmp/$s.$mode"
      line="$line $s $v MiB/s"
    done
    echo "$line"
  done
  mo=$(median < "$tmp/ours.$mode")
  mn=$(median < "$tmp/nbdkit.$mode")
  printf "%-5s median: ours %8.1f MiB/s  nbdkit %8.1f MiB/s  ratio %.3f\n" \
    "$mode" "$mo" "$mn" "$(echo "$mo $mn" | awk '{ print $1 / $2 }')"
done
