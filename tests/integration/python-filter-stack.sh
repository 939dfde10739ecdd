#!/usr/bin/env bash
# Python filters: typed parameters (the filter's keys are checked and
# converted, other keys go on to the plugin), --help; a Python filter
# over a Python plugin (one interpreter), two Python filters stacked,
# and filters/python/trace.py stacked with a C filter (cow), its trace
# asserted, to a file and to the debug log.
. "$(dirname "$0")/functions.sh"
requires_ours
requires nbdsh
requires_python_nbd
cd "$tmpdir"
trace="$SRCDIR/filters/python/trace.py"

cat > add.py <<'PY'
"""Adds N to every byte read."""
import nbdkit

n = nbdkit.Param("n", nbdkit.INT, default=1, doc="what to add")
mode = nbdkit.Param("mode", nbdkit.ENUM, choices=["add", "sub"], default="add")
params = [n, mode]


def pread(next, h, buf, offset, flags):
    next.pread(buf, offset, flags)
    d = n.value if mode.value == "add" else -n.value
    buf[:] = bytes((b + d) & 0xff for b in buf)
PY

cat > plug.py <<'PY'
import nbdkit
API_VERSION = 3
size = nbdkit.Param("size", nbdkit.SIZE, required=True)
params = [size]
disk = None
def config_complete():
    global disk
    disk = bytearray(size.value)
def get_size(h): return len(disk)
def pread(h, buf, offset, flags): buf[:] = disk[offset:offset + len(buf)]
def pwrite(h, buf, offset, flags): disk[offset:offset + len(buf)] = buf
PY

read0 () {  # read0 ARGS...: the first byte, as read through the server
  t "$NBDKIT" -U - "$@" --run 'nbdsh -u "$uri" -c "print(h.pread(1, 0)[0])"'
}

# The filter's keys are its own; size= goes on to the plugin.
assert_eq "default n" "$(read0 --filter=./add.py memory size=1M)" 1
assert_eq "n=5" "$(read0 --filter=./add.py memory size=1M n=5)" 5
assert_eq "sub" "$(read0 --filter=./add.py memory n=3 mode=sub size=1M)" 253
must_refuse () {
  local want="$1"; shift
  if t "$NBDKIT" -U - "$@" --run true > refuse.out 2>&1; then
    fail "started with $*"
  fi
  grep -qF -- "$want" refuse.out || { cat refuse.out; fail "$*: no '$want'"; }
}
must_refuse "n=x" --filter=./add.py memory size=1M n=x
must_refuse "mode" --filter=./add.py memory size=1M mode=mul
must_refuse "unknown parameter 'colour'" --filter=./add.py memory size=1M colour=red
"$NBDKIT" --filter=./add.py memory --help > help.out
grep -q "Adds N to every byte read" help.out || { cat help.out; fail "--help: no docstring"; }
grep -q "what to add" help.out || { cat help.out; fail "--help: no param doc"; }

# Over a Python plugin: one interpreter for both hosts.
assert_eq "over python" \
  "$(read0 --filter=./add.py ./plug.py size=1M n=7)" 7
assert_eq "over python, explicit host" \
  "$(read0 --filter=./add.py python ./plug.py size=1M n=7)" 7
# Two Python filters stacked (each its own layer and parameters).
cat > add2.py <<'PY'
import nbdkit
m = nbdkit.Param("m", nbdkit.INT, required=True)
params = [m]
def pread(next, h, buf, offset, flags):
    next.pread(buf, offset, flags)
    buf[:] = bytes((b + m.value) & 0xff for b in buf)
PY
assert_eq "stacked" \
  "$(read0 --filter=./add.py --filter=./add2.py ./plug.py size=1M n=2 m=40)" 42

# trace.py over cow over memory, to a file.
t "$NBDKIT" -U - --filter="$trace" --filter=cow memory 1M \
  tracefile="$tmpdir/trace.log" --run 'nbdsh -u "$uri" -c "
h.pwrite(b\"x\" * 4096, 8192, nbd.CMD_FLAG_FUA)
assert h.pread(4096, 8192) == b\"x\" * 4096
h.zero(4096, 0)
h.flush()
try:
    h.pread(512, 2 << 20)
except nbd.Error:
    pass
"'
cat trace.log
grep -q "^conn=1 open export='' readonly=False" trace.log || fail "no open"
grep -Eq "^conn=1 pwrite offset=8192 count=4096 flags=fua result=ok duration=[0-9.]+$" trace.log \
  || fail "no pwrite line"
grep -Eq "^conn=1 pread offset=8192 count=4096 flags=0 result=ok" trace.log || fail "no pread"
grep -Eq "^conn=1 zero offset=0 count=4096 flags=may_trim result=ok" trace.log || fail "no zero"
grep -Eq "^conn=1 flush offset=0 count=0 flags=0 result=ok" trace.log || fail "no flush"
grep -q "^conn=1 close" trace.log || fail "no close"

# An error from below is traced with its errno: a Python plugin that
# fails reads at 64k.
cat > bad.py <<'PY'
import errno, nbdkit
API_VERSION = 3
def get_size(h): return 1 << 20
def pread(h, buf, offset, flags):
    if offset == 65536:
        raise nbdkit.Error(errno.ENOSPC)
    buf[:] = bytes(len(buf))
PY
t "$NBDKIT" -U - --filter="$trace" ./bad.py tracefile="$tmpdir/t2.log" \
  --run 'nbdsh -u "$uri" -c "
try:
    h.pread(512, 65536)
except nbd.Error:
    pass
"'
grep -Eq "^conn=1 pread offset=65536 count=512 flags=0 result=ENOSPC" t2.log \
  || { cat t2.log; fail "no ENOSPC line"; }

# Without tracefile=, to the debug log.
t "$NBDKIT" -v -U - --filter="$trace" memory 1M \
  --run 'nbdsh -u "$uri" -c "h.pread(512, 0)"' 2> debug.log
grep -q "trace: conn=1 pread offset=0 count=512 flags=0 result=ok" debug.log \
  || { tail debug.log; fail "no trace in the debug log"; }
echo PASS
