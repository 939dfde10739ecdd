#!/usr/bin/env bash
# Python host: scripts written for nbdkit's own Python plugin run
# unchanged: API_VERSION 1 (the default: pread returns the data, zero
# gets may_trim, flush and trim no flags) and API_VERSION 2, with
# nbdkit's thread model numbers.  The same scripts are also run under
# Debian's nbdkit, when its python plugin is installed, to check that
# they are nbdkit's idiom.
. "$(dirname "$0")/functions.sh"
requires_ours
requires nbdsh

cat > v1.py <<'PY'
import nbdkit
disk = bytearray(1024 * 1024)
calls = set()
def thread_model():
    return nbdkit.THREAD_MODEL_SERIALIZE_REQUESTS
def open(readonly):
    return {"ro": readonly}
def get_size(h):
    return len(disk)
def pread(h, count, offset):
    calls.add("pread")
    return disk[offset:offset + count]
def pwrite(h, buf, offset):
    calls.add("pwrite")
    disk[offset:offset + len(buf)] = buf
def flush(h):
    calls.add("flush")
def trim(h, count, offset):
    calls.add("trim")
def zero(h, count, offset, may_trim):
    calls.add("zero:%s" % type(may_trim).__name__)
    disk[offset:offset + count] = bytearray(count)
def can_fua(h):
    return nbdkit.FUA_EMULATE
def export_description(h):
    return ",".join(sorted(calls))
PY

cat > v2.py <<'PY'
import errno
import nbdkit
API_VERSION = 2
disk = bytearray(1024 * 1024)
calls = set()
def thread_model():
    return 3          # nbdkit's THREAD_MODEL_PARALLEL
def open(readonly):
    return 1
def get_size(h):
    return len(disk)
def pread(h, buf, offset, flags):
    calls.add("pread:%d" % flags)
    buf[:] = disk[offset:offset + len(buf)]
def pwrite(h, buf, offset, flags):
    calls.add("pwrite:%d" % flags)
    disk[offset:offset + len(buf)] = buf
def flush(h, flags):
    calls.add("flush")
def trim(h, count, offset, flags):
    calls.add("trim:%d" % flags)
def can_zero(h):
    return False      # nbdkit: the server emulates zero with writes
def zero(h, count, offset, flags):
    nbdkit.set_error(errno.EOPNOTSUPP)
    raise Exception("never called")
def can_fua(h):
    return nbdkit.FUA_NATIVE
def can_extents(h):
    return True
def extents(h, count, offset, flags):
    return [(0, 4096, 0), (4096, len(disk) - 4096, nbdkit.EXTENT_HOLE | nbdkit.EXTENT_ZERO)]
def export_description(h):
    return ",".join(sorted(calls))
PY

servers="$NBDKIT"
if /usr/bin/nbdkit python --dump-plugin >/dev/null 2>&1; then
  servers="$servers /usr/bin/nbdkit"
fi

for server in $servers; do
  note "server $server"
  t "$server" -U - python ./v1.py --run 'nbdsh -u "$uri" -c "
h.pwrite(b\"one\" * 100, 4096)
assert h.pread(300, 4096) == b\"one\" * 100
h.pwrite(b\"fua\", 0, nbd.CMD_FLAG_FUA)
h.flush()
h.trim(4096, 8192)
h.zero(4096, 4096)
assert h.pread(300, 4096) == bytes(300)
"' || fail "API 1 script under $server"

  t "$server" -U - python ./v2.py --run 'nbdsh -u "$uri" -c "
h.pwrite(b\"two\" * 100, 4096, nbd.CMD_FLAG_FUA)
assert h.pread(300, 4096) == b\"two\" * 100
h.flush()
h.trim(4096, 8192)
assert h.can_zero()
h.zero(4096, 4096)
assert h.pread(300, 4096) == bytes(300)
"' || fail "API 2 script under $server"
done

# The calls the scripts saw (in our server), with the right arguments.
t "$NBDKIT" -U - ./v1.py --run 'nbdsh -u "$uri" -c "
h.pwrite(b\"x\", 0); h.flush(); h.trim(4096, 0); h.zero(512, 0); h.pread(1, 0)
" && nbdinfo "$uri"' | sed -n 's/^\tdescription: //p' > v1.calls
assert_eq "API 1 calls" "$(cat v1.calls)" "flush,pread,pwrite,trim,zero:bool"
t "$NBDKIT" -U - ./v2.py --run 'nbdsh -u "$uri" -c "
h.pwrite(b\"x\", 0, nbd.CMD_FLAG_FUA); h.trim(4096, 0, nbd.CMD_FLAG_FUA)
h.pread(1, 0)
" && nbdinfo "$uri"' | sed -n 's/^\tdescription: //p' > v2.calls
assert_eq "API 2 calls" "$(cat v2.calls)" "pread:0,pwrite:2,trim:2"

# Thread models in nbdkit's numbering.
t "$NBDKIT" ./v1.py --dump-plugin | grep -qx "thread_model=serialize_requests" ||
  fail "API 1 thread model"
t "$NBDKIT" ./v2.py --dump-plugin | grep -qx "thread_model=parallel" ||
  fail "API 2 thread model"
t "$NBDKIT" ./v2.py --dump-plugin | grep -qx "python_api_version=2" ||
  fail "API 2 version"
# Extents from an API 2 script.
t "$NBDKIT" -U - ./v2.py --run 'nbdinfo --map "$uri"' > map.out
grep -Eq '^ +0 +4096 +0 +data' map.out || { cat map.out; fail "map data"; }
grep -Eq '^ +4096 +1044480 +3 +hole,zero' map.out || { cat map.out; fail "map hole"; }
echo "python-compat: OK"
