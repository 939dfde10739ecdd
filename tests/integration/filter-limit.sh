#!/usr/bin/env bash
# limit: with limit=1 a second client is refused while the first is
# connected and accepted once it left; limit=2 takes two; limit=0 any.
. "$(dirname "$0")/functions.sh"
requires nbdsh --version
requires nbdinfo --version
requires_python_nbd

start_nbdkit one --filter=limit memory 1M
# Client 1 holds the connection until hold.stop appears.
nbdsh -u "$uri" -c '
import os, time
h.pwrite(b"first", 0)
open("hold.ready", "w").close()
while not os.path.exists("hold.stop"):
    time.sleep(0.05)
' &
holder=$!
wait_for_file hold.ready 100 || true
[ -e hold.ready ] || fail "first client did not connect"
if t nbdinfo --size "$uri" 2>err.txt; then
  fail "a second client was accepted with limit=1"
fi
touch hold.stop
wait $holder || fail "first client failed"
assert_eq "after the first left" "$(t nbdsh -u "$uri" -c 'print(h.pread(5,0).decode())')" first

echo data > disk.img
start_nbdkit two --filter=limit file disk.img limit=2
t nbdsh -u "$uri" -c 'h2 = nbd.NBD(); h2.connect_uri(h.get_uri())
h3 = nbd.NBD()
try:
    h3.connect_uri(h.get_uri())
    raise SystemExit("a third client was accepted with limit=2")
except nbd.Error:
    pass' || fail "limit=2"

start_nbdkit many --filter=limit memory 1M limit=0
t nbdsh -u "$uri" -c 'hs = [nbd.NBD() for _ in range(5)]
for x in hs: x.connect_uri(h.get_uri())' || fail "limit=0 refused a client"
echo "$testname: OK"
