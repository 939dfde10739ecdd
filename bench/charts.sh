#!/usr/bin/env bash
# Charts of this server beside Debian's nbdkit, split placement (server
# on CPU 0, client on CPU 1), memory plugin, over Unix sockets:
#   size.png     sequential read throughput (nbdcopy -C 1 -T 1) over
#                request size, 4 KiB to 32 MiB
#   threads.png  random 4 KiB reads at depth 64 (fio) over worker
#                threads, -t 1 to 64
# Servers alternate at every point; each point is the median of ROUNDS.
#
#   bench/charts.sh [-r ROUNDS] [-s SIZE_MIB] [-b BUILDDIR] [-o OUTDIR]
set -euo pipefail
export PATH=/usr/bin:/bin:/usr/sbin:/sbin:$PATH
export LC_ALL=C

rounds=3
size_mib=256
builddir=build
outdir=bench/charts
while getopts "r:s:b:o:" o; do
  case $o in
    r) rounds=$OPTARG ;;
    s) size_mib=$OPTARG ;;
    b) builddir=$OPTARG ;;
    o) outdir=$OPTARG ;;
    *) sed -n '2,11p' "$0"; exit 2 ;;
  esac
done
cd "$(dirname "$0")/.."
ours=$(realpath "$builddir/nbdkit")
for c in nbdkit nbdcopy fio gnuplot taskset python3; do
  command -v $c >/dev/null || { echo "charts: $c is needed" >&2; exit 2; }
done
mkdir -p "$outdir"
tmp=$(mktemp -d /dev/shm/nbdcharts.XXXXXX)
pid=""
stop () {
  if [ -n "$pid" ]; then
    kill "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  fi
  pid=""
}
trap 'stop; rm -rf "$tmp"' EXIT
size=$((size_mib << 20))
head -c "$size" /dev/urandom > "$tmp/src.img"

# start SERVER [ARGS...]: the server on CPU 0, filled with the data.
start () {
  local bin=$1 sock=$tmp/sock
  shift
  rm -f "$sock"
  taskset -c 0 "$bin" -f -U "$sock" "$@" memory "$size" &
  pid=$!
  for _ in $(seq 200); do [ -S "$sock" ] && break; sleep 0.05; done
  uri="nbd+unix:///?socket=$sock"
  taskset -c 1 nbdcopy "$tmp/src.img" "$uri"
}

median () { sort -n | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }'; }

# Sequential reads over request size.
: > "$outdir/size.dat"
for rs in 4096 16384 65536 262144 1048576 4194304 16777216 33554432; do
  line="$rs"
  for bin in "$ours" nbdkit; do
    for r in $(seq "$rounds"); do
      start "$bin"
      t0=$(date +%s.%N)
      taskset -c 1 nbdcopy --no-extents -S 0 -C 1 -T 1 --request-size="$rs" \
        "$uri" null:
      t1=$(date +%s.%N)
      stop
      echo "$size_mib $t0 $t1" | awk '{ printf "%.0f\n", $1 / ($3 - $2) }'
    done > "$tmp/v"
    line="$line $(median < "$tmp/v")"
  done
  echo "charts: request size $rs: $line" >&2
  echo "$line" >> "$outdir/size.dat"
done

# Random reads over worker threads.
: > "$outdir/threads.dat"
for t in 1 2 4 8 16 32 64; do
  line="$t"
  for bin in "$ours" nbdkit; do
    for r in $(seq "$rounds"); do
      start "$bin" -t "$t"
      taskset -c 1 fio --name=r --ioengine=nbd --uri="$uri" --rw=randread \
        --bs=4k --iodepth=64 --runtime=2 --time_based --size="$size" \
        --output-format=json 2>/dev/null \
        | python3 -c 'import json,sys; t=sys.stdin.read(); print(round(json.loads(t[t.index("{"):])["jobs"][0]["read"]["iops"]))'
      stop
    done > "$tmp/v"
    line="$line $(median < "$tmp/v")"
  done
  echo "charts: -t $t: $line" >&2
  echo "$line" >> "$outdir/threads.dat"
done

gnuplot <<EOF
set terminal png size 800,500
set grid
set key top left
set output "$outdir/size.png"
set title "Sequential read (nbdcopy -C 1 -T 1), split placement, memory plugin"
set xlabel "request size (bytes)"
set ylabel "MiB/s"
set logscale x 2
set format x "%.0s%cB"
plot "$outdir/size.dat" using 1:2 with linespoints title "this server", \
     "$outdir/size.dat" using 1:3 with linespoints title "nbdkit 1.32"
set output "$outdir/threads.png"
set title "Random 4 KiB reads, depth 64 (fio), split placement, memory plugin"
set xlabel "worker threads (-t)"
set ylabel "IOPS"
set format x "%g"
set yrange [0:*]
plot "$outdir/threads.dat" using 1:2 with linespoints title "this server", \
     "$outdir/threads.dat" using 1:3 with linespoints title "nbdkit 1.32"
EOF
echo "charts: $outdir/size.png $outdir/threads.png" >&2
