#!/usr/bin/env bash
# The soak test (tests/soak/soak.py) by hand: many clients doing mixed
# reads, writes, zeroes, trims and flushes against the memory and file
# plugins, checked against a model byte for byte.  Prints operations per
# second for each plugin; with -c also for Debian's nbdkit, side by side
# (the client, Python with libnbd, is the bottleneck: compare, don't
# quote as the server's speed).
#
#   bench/soak.sh [-t SECONDS] [-n CLIENTS] [-b BUILDDIR] [-c]
#
# SECONDS (default 60) is split between the two plugins.
set -euo pipefail
export PATH=/usr/bin:/bin:/usr/sbin:/sbin:$PATH
secs=60
clients=16
builddir=build
compare=no
while getopts "t:n:b:c" o; do
  case $o in
    t) secs=$OPTARG ;;
    n) clients=$OPTARG ;;
    b) builddir=$OPTARG ;;
    c) compare=yes ;;
    *) sed -n '2,12p' "$0"; exit 2 ;;
  esac
done
cd "$(dirname "$0")/.."
servers="$(realpath "$builddir/nbdkit")"
[ $compare = yes ] && servers="$servers /usr/bin/nbdkit"
seed=${SOAK_SEED:-$(date +%s)}
for s in $servers; do
  SOAK=1 SOAK_SECONDS=$secs SOAK_CLIENTS=$clients SOAK_SEED=$seed NBDKIT=$s \
    /usr/bin/python3 tests/soak/soak.py
done
