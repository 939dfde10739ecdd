#!/usr/bin/env bash
# A plugin describing more extents in one answer than the server keeps
# (1,048,576): the answer stops at the last complete extent, and the
# client asks again from there.  The disk alternates one byte of data
# (0xff) and one byte of hole (0); nbdcopy must copy it byte for byte.
# (The server used to drop the extent that did not fit and merge the
# next one of the same type across it, so a data byte read as a hole.)
. "$(dirname "$0")/functions.sh"
requires nbdcopy --version
# A million extents through a script, under a sanitizer, take longer
# than any test may (each call forks the sanitized server).
if ldd "$NBDKIT" | grep -Eq 'lib(a|ub|t)san'; then
  skip "too slow in a sanitized build"
fi
cd "$tmpdir"

n=1048580
cat > gen.py <<'PY'
import sys
n, what, count, offset = (int(sys.argv[1]), sys.argv[2], int(sys.argv[3]),
                          int(sys.argv[4]))
if what == "pread":
    sys.stdout.buffer.write(bytes(0xff if (offset + i) % 2 == 0 else 0
                                  for i in range(count)))
else:
    # Every extent from OFFSET to the end of the disk, in one answer.
    out = ["%d 1%s" % (i, "" if i % 2 == 0 else " hole,zero")
           for i in range(offset, n)]
    sys.stdout.write("\n".join(out) + "\n")
PY
{
  echo '#!/bin/bash'
  echo 'case "$1" in'
  echo "  get_size) echo $n ;;"
  echo "  pread|extents) exec $PYTHON $tmpdir/gen.py $n \"\$1\" \"\$3\" \"\$4\" ;;"
  echo '  can_extents) echo native ;;'
  echo '  thread_model) echo parallel ;;'
  echo '  *) exit 2 ;;'
  echo 'esac'
} > alt.sh
chmod +x alt.sh
"$PYTHON" -c "
import sys
sys.stdout.buffer.write(bytes(0xff if i % 2 == 0 else 0 for i in range($n)))" \
  > expected.img

start_nbdkit alt sh "$tmpdir/alt.sh"
truncate -s $n out.img
timeout 300 nbdcopy -- "$uri" out.img || fail "nbdcopy failed"
cmp expected.img out.img || fail "the copy differs from the disk"

# The same through libnbd's block status: every extent reported holds
# what its type says.
timeout 300 "$PYTHON" - "$uri" $n <<'PY' || fail "block status lies"
import sys
import nbd
uri, n = sys.argv[1], int(sys.argv[2])
h = nbd.NBD()
h.add_meta_context(nbd.CONTEXT_BASE_ALLOCATION)
h.connect_uri(uri)
pos = 0
seen = []


def cb(ctx, off, entries, err):
    seen.extend(zip(entries[0::2], entries[1::2]))
    return 0


while pos < n:
    seen.clear()
    h.block_status(n - pos, pos, cb)
    assert seen, "no extent at %d" % pos
    for length, flags in seen:
        for i in range(pos, min(pos + length, n)):
            want = 0 if i % 2 == 0 else 3
            if flags != want:
                raise SystemExit("offset %d reported with flags %d" %
                                 (i, flags))
        pos += length
h.shutdown()
PY
echo "$testname: OK"
