#!/usr/bin/env bash
# nbd plugin: a proxy to our own server.  Writes land in the backend,
# holes and extents pass through, export names, capabilities and
# errnos reach the client.
. "$(dirname "$0")/functions.sh"
requires nbdsh
requires nbdinfo
cd "$tmpdir"

start_nbdkit back memory 8M
back_sock="$sock" back_uri="$uri"
start_nbdkit px nbd socket="$back_sock"
px_uri="$uri"

# Bytes written through the proxy land in the backend.
head -c 300000 /dev/urandom > chunk
nbdsh_u "$px_uri" -c '
assert h.get_size() == 8 << 20, h.get_size()
h.pwrite(open("chunk", "rb").read(), 1 << 20, nbd.CMD_FLAG_FUA)
h.zero(4096, (1 << 20) + 8192)
h.pwrite(b"end!", (8 << 20) - 4)
h.trim(65536, 6 << 20)
h.flush()
'
nbdsh_u "$back_uri" -c '
want = bytearray(open("chunk", "rb").read())
want[8192:8192 + 4096] = bytes(4096)
got = h.pread(len(want), 1 << 20)
assert got == want, "backend differs"
assert h.pread(4, (8 << 20) - 4) == b"end!"
assert h.pread(1 << 20, 0) == bytes(1 << 20)
'

# Extents through the proxy are the backend's.
nbdinfo --map "$back_uri" > map.back
nbdinfo --map "$px_uri" > map.px
cat map.px
cmp map.back map.px || fail "nbdinfo --map differs through the proxy"
grep -q "hole,zero" map.px || fail "no hole in the map"
grep -q "data" map.px || fail "no data in the map"

# A sparse read comes back with hole chunks (structured replies).
nbdsh_u "$px_uri" -c '
chunks = []
def f(buf, offset, status, err):
    chunks.append((offset, len(buf), status))
buf = h.pread_structured(4 << 20, 0, f)
assert buf[1 << 20:(1 << 20) + 10] == open("chunk", "rb").read(10)
holes = [c for c in chunks if c[2] == nbd.READ_HOLE]
data = [c for c in chunks if c[2] == nbd.READ_DATA]
assert holes and data, chunks
assert (0, 1 << 20, nbd.READ_HOLE) in chunks, chunks
'

# Capabilities pass through: a read-only backend is read-only here.
start_nbdkit robk -r memory 1M
start_nbdkit ropx nbd socket="$sock"
nbdsh_u "$uri" -c 'assert h.is_read_only()'
nbdsh_u "$px_uri" -c 'assert not h.is_read_only() and h.can_fua() and h.can_trim()'

# Block sizes pass through.
start_nbdkit bsbk --filter=blocksize-policy memory 1M blocksize-minimum=4096 \
  blocksize-preferred=65536 blocksize-maximum=1M
start_nbdkit bspx nbd socket="$sock"
nbdsh_u "$uri" -c '
assert h.get_block_size(nbd.SIZE_MINIMUM) == 4096, h.get_block_size(nbd.SIZE_MINIMUM)
assert h.get_block_size(nbd.SIZE_PREFERRED) == 65536
assert h.get_block_size(nbd.SIZE_MAXIMUM) == 1 << 20
'

# Errors keep their errno: the full plugin fails writes with ENOSPC.
start_nbdkit fullbk full 1M
start_nbdkit fullpx nbd socket="$sock"
nbdsh_u "$uri" -c '
import errno
try:
    h.pwrite(b"x" * 512, 0)
    assert False, "write succeeded"
except nbd.Error as e:
    assert e.errnum == errno.ENOSPC, e
'

# export= picks the backend's export; dynamic-export= passes the
# client's.  The info plugin's exportname mode serves the name asked.
start_nbdkit infobk info mode=exportname
info_sock="$sock"
start_nbdkit expx nbd socket="$info_sock" export=fixed
nbdsh_u "$uri" -c 'assert h.pread(h.get_size(), 0) == b"fixed", h.pread(h.get_size(), 0)'
start_nbdkit dynpx nbd socket="$info_sock" dynamic-export=true
nbdsh -u "nbd+unix:///chosen?socket=$sock" \
  -c 'assert h.pread(h.get_size(), 0) == b"chosen", h.pread(h.get_size(), 0)'
start_nbdkit dynuri nbd "nbd+unix:///ignored?socket=$info_sock" \
  dynamic-export=true
nbdsh -u "nbd+unix:///other?socket=$sock" \
  -c 'assert h.pread(h.get_size(), 0) == b"other", h.pread(h.get_size(), 0)'
# dynamic-export=true lists the backend's exports.
mkdir dir && echo one > dir/a && echo two > dir/b
start_nbdkit dirbk file dir="$tmpdir/dir"
start_nbdkit dirpx nbd socket="$sock" dynamic-export=true
t nbdinfo --list "$uri" > list.px
grep -q 'export="a"' list.px && grep -q 'export="b"' list.px ||
  { cat list.px; fail "the backend's exports are not listed"; }
nbdsh -u "nbd+unix:///b?socket=$sock" -c 'assert h.pread(4, 0) == b"two\n"'

# uri= as the magic key, with the URI's export.
start_nbdkit uripx nbd "nbd+unix:///viauri?socket=$info_sock"
nbdsh_u "$uri" -c 'assert h.pread(h.get_size(), 0) == b"viauri"'

# shared=true: two clients on one backend connection see each other's writes.
start_nbdkit shpx nbd socket="$back_sock" shared=true
nbdsh_u "$uri" -c 'h.pwrite(b"shared", 100)'
nbdsh_u "$uri" -c 'assert h.pread(6, 100) == b"shared"'
nbdsh_u "$back_uri" -c 'assert h.pread(6, 100) == b"shared"'
# A backend that goes away: requests fail with EIO and a message.
start_nbdkit gonebk memory 1M
gone_pid=$pid gone_sock="$sock"
start_nbdkit gonepx nbd socket="$gone_sock" 2> gone.err
nbdsh_u "$uri" -c "
import errno, os, signal, time
h.pread(1, 0)
os.kill($gone_pid, signal.SIGKILL)
time.sleep(0.3)
for i in range(2):
    try:
        h.pread(1, 0)
        assert False, 'read succeeded'
    except nbd.Error as e:
        assert e.errnum == errno.EIO, e
"
grep -q "connection to the NBD server at socket=$gone_sock is lost" gone.err ||
  { cat gone.err; fail "no message about the lost connection"; }
echo "nbd-plugin: OK"
