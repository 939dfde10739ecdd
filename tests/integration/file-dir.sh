#!/usr/bin/env bash
# file plugin dir=: each file is an export; nbdinfo --list names them,
# each export has its file's size and content, unknown names fail.
. "$(dirname "$0")/functions.sh"
requires nbdinfo
requires nbdsh

mkdir d
head -c 1048576 /dev/urandom > d/alpha.img
printf 'beta contents' > d/beta
truncate -s 3M d/beta

start_nbdkit dir file dir="$tmpdir/d"

t nbdinfo --list --json "$uri" > list.json
"$PYTHON" - <<'PY'
import json
j = json.load(open("list.json"))
names = sorted(e["export-name"] for e in j["exports"])
assert names == ["alpha.img", "beta"], names
sizes = {e["export-name"]: e["export-size"] for e in j["exports"]}
assert sizes == {"alpha.img": 1048576, "beta": 3 << 20}, sizes
PY
t nbdinfo --list "$uri" > list.txt
grep -q alpha.img list.txt || fail "alpha.img not listed"
grep -q beta list.txt || fail "beta not listed"

assert_eq "alpha size" "$(t nbdinfo --size "nbd+unix:///alpha.img?socket=$sock")" 1048576
assert_eq "beta size" "$(t nbdinfo --size "nbd+unix:///beta?socket=$sock")" $((3 << 20))

t nbdsh -u "nbd+unix:///beta?socket=$sock" -c '
assert h.pread(13, 0) == b"beta contents"
assert h.pread(4, (3 << 20) - 4) == bytes(4)
'
t nbdsh -u "nbd+unix:///alpha.img?socket=$sock" -c '
assert h.pread(1048576, 0) == open("d/alpha.img", "rb").read()
'

# An unknown export name fails to connect.
if t nbdinfo --size "nbd+unix:///nosuch?socket=$sock" > unk.out 2>&1; then
  cat unk.out; fail "unknown export name was accepted"
fi
t nbdsh -c '
import errno
try:
    h.connect_uri("nbd+unix:///nosuch?socket='"$sock"'")
    raise AssertionError("connected to unknown export")
except nbd.Error as e:
    pass
'
# The server still works after the failed connection.
assert_eq "alpha size again" "$(t nbdinfo --size "nbd+unix:///alpha.img?socket=$sock")" 1048576
echo "file-dir: OK"
