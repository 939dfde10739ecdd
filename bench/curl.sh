#!/usr/bin/env bash
# Sequential copy through the curl plugin: this server's against
# Debian's nbdkit curl plugin, the same file from the same nginx
# (tests/services/nginx.sh) in the same run, servers alternating round
# by round.  Each copy is
#   nbdcopy --no-extents -C N nbd+unix:///?socket=... null:
# of a file of random data on tmpfs, read-only servers (-r).
# Workloads:
#   1c        nbdcopy -C 1; ours with its default pool (connections=4)
#   1c-pool1  nbdcopy -C 1; ours with connections=1 (one HTTP connection,
#             as Debian's plugin has per NBD connection)
#   4c        nbdcopy -C 4; ours with connections=4, Debian's with one
#             handle per NBD connection (4)
# Prints each round, then the medians (MiB/s) and the ratio ours / nbdkit,
# and the server's CPU time (user + system, from /proc) per GiB copied:
# on a shared machine the throughput swings with the load, the CPU time
# much less.
#
#   bench/curl.sh [-r ROUNDS] [-s SIZE_MIB] [-b BUILDDIR] [-p http|https|both]
#   bench/curl.sh -a [-r ROUNDS] [-s SIZE_MIB] [-t SECONDS] [-c CONNS] [-b BUILDDIR]
#
# -a: ours with asynchronous reads (async=true, the default) against
# ours with async=false, instead of against Debian's: a sequential copy
# (nbdcopy --no-extents -C 4 URI null:, MiB/s), then random 4 KiB
# reads at depth 1, 16 and 64 for -t seconds each (default 5) by a
# libnbd client (bench/s3-randread.py), IOPS, and the most threads the
# server had (/proc/PID/task, sampled every 0.1 s) during each; both
# with connections=CONNS (default 16) and the server's default -t.
#
# Environment: NBDKIT_OTHER (default /usr/bin/nbdkit).  Nothing is
# pinned: nginx, the server and the client share the machine's CPUs.
set -euo pipefail
export PATH=/usr/bin:/bin:/usr/sbin:/sbin:$PATH
export LC_ALL=C

rounds=5
size_mib=256
builddir=build
protos=http
amode=false
secs=5
conns=16
while getopts "ar:s:b:p:t:c:" o; do
  case $o in
    a) amode=true ;;
    t) secs=$OPTARG ;;
    c) conns=$OPTARG ;;
    r) rounds=$OPTARG ;;
    s) size_mib=$OPTARG ;;
    b) builddir=$OPTARG ;;
    p) protos=$OPTARG ;;
    *) sed -n '2,29p' "$0"; exit 2 ;;
  esac
done
[ "$protos" = both ] && protos="http https"
cd "$(dirname "$0")/.."
ours=$(realpath "$builddir/nbdkit")
other=${NBDKIT_OTHER:-/usr/bin/nbdkit}
for c in $($amode || echo "$other") nbdcopy nginx python3; do
  command -v "$c" >/dev/null || { echo "bench/curl: $c is needed" >&2; exit 2; }
done

tmp=$(mktemp -d /dev/shm/nbdcurl.XXXXXX)
pid=""
stop () {
  if [ -n "$pid" ]; then
    kill "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  fi
  pid=""
}
. tests/services/nginx.sh
trap 'stop; nginx_stop; rm -rf "$tmp"' EXIT

mkdir "$tmp/www"
head -c $((size_mib << 20)) /dev/urandom > "$tmp/www/disk.img"
nginx_start "$tmp/www" "$tmp/nginx" >/dev/null
: > "$tmp/server.log"

# start SERVER PROTO WORKLOAD: a read-only curl server on $tmp/sock.
start () {
  local bin extra=() url
  if [ "$2" = https ]; then
    url="$NGINX_HTTPS_URL/data/disk.img"
    extra+=("cainfo=$NGINX_CA")
  else
    url="$NGINX_URL/data/disk.img"
  fi
  if [ "$1" = ours ]; then
    bin=$ours
    case $3 in
      1c-pool1) extra+=(connections=1) ;;
      *) extra+=(connections=4) ;;
    esac
    # OURS_EXTRA: more keys for ours (e.g. OURS_EXTRA=async=false).
    extra+=(${OURS_EXTRA:-})
  else
    bin=$other
  fi
  rm -f "$tmp/sock" "$tmp/pid"
  "$bin" -U "$tmp/sock" -P "$tmp/pid" -f -r curl "$url" "${extra[@]}" \
    2>>"$tmp/server.log" &
  pid=$!
  for _ in $(seq 100); do [ -s "$tmp/pid" ] && break; sleep 0.1; done
  [ -s "$tmp/pid" ] || { echo "bench/curl: $1 did not start" >&2; exit 1; }
}

# CPU time of the server so far, in clock ticks.
cputicks () { awk '{ print $14 + $15 }' "/proc/$pid/stat"; }

# One timed copy of the whole export: prints MiB/s and the server's
# CPU seconds per GiB.
run () {
  local t0 t1 c0 c1 c=1
  [ "$1" = 4c ] && c=4
  c0=$(cputicks)
  t0=$(date +%s.%N)
  nbdcopy --no-extents -C "$c" "nbd+unix:///?socket=$tmp/sock" null:
  t1=$(date +%s.%N)
  c1=$(cputicks)
  echo "$size_mib $t0 $t1 $c0 $c1 $(getconf CLK_TCK)" |
    awk '{ printf "%.1f %.2f\n", $1 / ($3 - $2), ($5 - $4) / $6 * 1024 / $1 }'
}

median () { sort -n | awk '{ a[NR] = $1 } END { print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2 }'; }

# -a: async=true against async=false, random reads over HTTP.
if $amode; then
  url="$NGINX_URL/data/disk.img"
  echo "bench/curl -a: ${size_mib} MiB file on tmpfs, nginx $(nginx -v 2>&1 | sed 's|.*/||'), $rounds rounds, ${secs} s runs, connections=$conns"
  echo "  ours:   $ours"
  : > "$tmp/results"
  # astart ours|ours-sync: a fresh server (its thread count from zero).
  astart () {
    local a=true
    [ "$1" = ours-sync ] && a=false
    rm -f "$tmp/sock" "$tmp/pid"
    "$ours" -U "$tmp/sock" -P "$tmp/pid" -f -r curl "$url" \
      connections="$conns" async=$a 2>>"$tmp/server.log" &
    pid=$!
    for _ in $(seq 100); do [ -s "$tmp/pid" ] && break; sleep 0.1; done
    [ -s "$tmp/pid" ] || { echo "bench/curl: $1 did not start" >&2; exit 1; }
  }
  order="ours ours-sync"
  for r in $(seq "$rounds"); do
    for s in $order; do
      astart "$s"
      t0=$(date +%s.%N)
      nbdcopy --no-extents -C 4 "nbd+unix:///?socket=$tmp/sock" null:
      t1=$(date +%s.%N)
      stop
      v=$(echo "$size_mib $t0 $t1" | awk '{ printf "%.1f", $1 / ($3 - $2) }')
      echo "$s seqread-4c $v" >> "$tmp/results"
      line="  round $r $s: seqread-4c $v MiB/s"
      astart "$s"
      for qd in 1 16 64; do
        python3 bench/s3-randread.py "nbd+unix:///?socket=$tmp/sock" "$qd" \
          "$secs" > "$tmp/iops" &
        client=$! most=0
        while kill -0 "$client" 2>/dev/null; do
          n=$(ls "/proc/$pid/task" 2>/dev/null | wc -l)
          [ "$n" -gt "$most" ] && most=$n
          sleep 0.1
        done
        wait "$client"
        echo "$s rand4k-qd$qd $(cat "$tmp/iops")" >> "$tmp/results"
        echo "$s threads-qd$qd $most" >> "$tmp/results"
        line="$line qd$qd $(cat "$tmp/iops") IOPS ($most threads)"
      done
      stop
      echo "$line"
    done
    order=$(echo "$order" | tr ' ' '\n' | tac | tr '\n' ' ')
  done
  echo
  echo "medians:"
  python3 - "$tmp/results" <<'PY'
import statistics, sys
rows = [l.split() for l in open(sys.argv[1])]
workloads, vals = [], {}
for s, w, v in rows:
    if w not in workloads:
        workloads.append(w)
    vals.setdefault((s, w), []).append(float(v))
print("%-12s %-7s %10s %10s %9s" % ("workload", "unit", "ours", "ours-sync", "ratio"))
for w in workloads:
    o = statistics.median(vals[("ours", w)])
    d = statistics.median(vals[("ours-sync", w)])
    unit = "threads" if w.startswith("threads") else \
        "MiB/s" if w.startswith("seq") else "IOPS"
    print("%-12s %-7s %10.1f %10.1f %8.2fx" % (w, unit, o, d, o / d if d else 0))
print()
print("every run:")
for w in workloads:
    for s in ("ours", "ours-sync"):
        print("  %-12s %-9s %s" % (w, s, " ".join("%.1f" % v for v in vals[(s, w)])))
PY
  exit 0
fi

workloads="1c 1c-pool1 4c"
echo "bench/curl: ${size_mib} MiB file on tmpfs, nginx $(nginx -v 2>&1 | sed 's|.*/||'), $rounds rounds"
echo "  ours:   $ours"
echo "  nbdkit: $other ($("$other" --version | head -1))"
echo "  client: nbdcopy --no-extents -C N nbd+unix:///?socket=SOCK null:"
for proto in $protos; do
  for w in $workloads; do
    : > "$tmp/ours.$proto.$w"
    : > "$tmp/nbdkit.$proto.$w"
    : > "$tmp/ours.$proto.$w.cpu"
    : > "$tmp/nbdkit.$proto.$w.cpu"
  done
  for r in $(seq "$rounds"); do
    for w in $workloads; do
      line="  $proto $w round $r:"
      for s in ours nbdkit; do
        start "$s" "$proto" "$w"
        read -r v cpu < <(run "$w")
        stop
        echo "$v" >> "$tmp/$s.$proto.$w"
        echo "$cpu" >> "$tmp/$s.$proto.$w.cpu"
        line="$line $s $v MiB/s ($cpu CPU s/GiB)"
      done
      echo "$line"
    done
  done
done
echo
echo "medians: MiB/s, and the server's CPU seconds per GiB"
printf "%-6s %-9s %9s %9s %7s   %9s %9s %7s\n" proto workload ours nbdkit ratio \
  ours-cpu nbdkit-cpu ratio
for proto in $protos; do
  for w in $workloads; do
    mo=$(median < "$tmp/ours.$proto.$w")
    mn=$(median < "$tmp/nbdkit.$proto.$w")
    co=$(median < "$tmp/ours.$proto.$w.cpu")
    cn=$(median < "$tmp/nbdkit.$proto.$w.cpu")
    printf "%-6s %-9s %9.1f %9.1f %6.2fx   %9.2f %9.2f %6.2fx\n" \
      "$proto" "$w" "$mo" "$mn" "$(echo "$mo $mn" | awk '{ print $1 / $2 }')" \
      "$co" "$cn" "$(echo "$co $cn" | awk '{ print ($2 > 0) ? $1 / $2 : 0 }')"
  done
done
