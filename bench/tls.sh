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
#
# Environment: CPU (default 0), NBDKIT_OTHER (default /usr/bin/nbdkit).
set -euo pipefail
export PATH=/usr/bin:/bin:/usr/sbin:/sbin:$PATH
export LC_ALL=C

rounds=5
size_mib=1024
builddir=build
modes=both
while getopts "r:s:b:m:" o; do
  case $o in
    r) rounds=$OPTARG ;;
    s) size_mib=$OPTARG ;;
    b) builddir=$OPTARG ;;
    m) modes=$OPTARG ;;
    *) sed -n '2,14p' "$0"; exit 2 ;;
  esac
done
[ "$modes" = both ] && modes="x509 psk"
cd "$(dirname "$0")/.."
ours=$(realpath "$builddir/nbdkit")
other=${NBDKIT_OTHER:-/usr/bin/nbdkit}
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
  local bin creds
  [ "$1" = ours ] && bin=$ours || bin=$other
  if [ "$2" = psk ]; then creds="--tls-psk=$psk"
  else creds="--tls-certificates=$pki"; fi
  rm -f "$tmp/sock" "$tmp/pid"
  $pin "$bin" -U "$tmp/sock" -P "$tmp/pid" -f --tls=require "$creds" \
    memory "${size_mib}M" 2>>"$tmp/server.log" &
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

median () { sort -n | awk '{ a[NR] = $1 } END { print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2 }'; }

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
