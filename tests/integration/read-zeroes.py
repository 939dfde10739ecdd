#!/usr/bin/python3
"""Bytes of a read that no plugin or filter wrote reach the client as
zeroes, in every host and plugin API, and no data of one read, or of
one connection, reaches another.

Each plugin here serves a 64 MiB disk.  Export "fill" reads as 0xff
everywhere; other exports read 0xff in the first half, and in the
second half the plugin leaves the buffer alone (C API 1, 2, 3, Python,
OCaml), fails (56 MiB), or writes only half of it (58 MiB).  Lua, sh
and eval plugins cannot succeed without writing every byte; for them a
read that leaves bytes alone must fail instead.  Python and Lua filters
over the pattern plugin answer reads in the second half without calling
the layer below or writing anything.

Through libnbd, with and without structured replies, at sizes 512 B to
4 MiB and several offsets: a read of 0xff first (so the server's
buffers hold it), then reads in the second half, which must be all
zeroes.  Across connections: one reads export "fill" while (and before)
another reads the second half."""
import os
import signal
import sys
import threading

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import nbdtest  # noqa: E402
from nbdtest import nbd  # noqa: E402

nbdtest.require_ours()
BUILDDIR = os.path.abspath(os.environ.get("BUILDDIR", "."))
M = 1 << 20
SIZE = 64 * M
HALF = SIZE // 2
FAIL_AT = 56 * M
PART_AT = 58 * M
SIZES = (512, 1000, 4096, 65536, M, 4 * M)

t = nbdtest.Test()


def write(name, text):
    p = t.path(name)
    with open(p, "w") as f:
        f.write(text)
    os.chmod(p, 0o755)
    return p


PY_PLUGIN = write("nofill.py", '''
import errno
import nbdkit
API_VERSION = 3
SIZE = %d
HALF = SIZE // 2


def thread_model():
    return nbdkit.THREAD_MODEL_PARALLEL


def open(readonly, exportname, tls):
    return exportname


def get_size(h):
    return SIZE


def pread(h, buf, offset, flags):
    if h == "fill" or offset < HALF:
        buf[:] = b"\\xff" * len(buf)
    elif offset == %d:
        raise nbdkit.Error(errno.EIO, "failing here")
    elif offset == %d:
        buf[:len(buf) // 2] = bytes(len(buf) // 2)
''' % (SIZE, FAIL_AT, PART_AT))

PY_FILTER = write("nofill-filter.py", '''
API_VERSION = 3
HALF = %d


def pread(next, h, buf, offset, flags):
    if offset < HALF:
        next.pread(buf, offset, flags)
''' % HALF)

LUA_PLUGIN = write("nofill.lua", '''
local SIZE = %d
local HALF = SIZE // 2

function open(readonly, exportname, is_tls)
  return exportname
end

function get_size(h)
  return SIZE
end

function pread(h, count, offset, flags)
  if h == "fill" or offset < HALF then
    return string.rep("\\xff", count)
  elseif offset == %d then
    error(nbdkit.errno("EIO", "failing here"))
  elseif offset == %d then
    nbdkit.read_data(offset, string.rep("\\0", count // 2))
    return
  end
  -- nothing: leaves every byte alone
end
''' % (SIZE, FAIL_AT, PART_AT))

LUA_FILTER = write("nofill-filter.lua", '''
local HALF = %d

function pread(next, h, count, offset, flags)
  if offset < HALF then
    return next:pread(count, offset, flags)
  end
end
''' % HALF)

ML_PLUGIN = write("nofill.ml", '''
open NBDKit

let size = %dL
let half = Int64.div size 2L

let pread h buf offset _flags =
  if h = "fill" || offset < half then Bytes.fill buf 0 (Bytes.length buf) '\\255'
  else if offset = %dL then raise (Error (Unix.EIO, "failing here"))
  else if offset = %dL then Bytes.fill buf 0 (Bytes.length buf / 2) '\\000'

let () =
  register_plugin ~name:"nofill"
    ~open_connection:(fun _ro export _tls -> export)
    ~get_size:(fun _ -> size)
    ~pread ()
''' % (SIZE, FAIL_AT, PART_AT))

SH_PLUGIN = write("nofill.sh", '''#!/bin/bash
case "$1" in
  open) echo "$3" ;;
  get_size) echo %d ;;
  thread_model) echo parallel ;;
  pread)
    if [ "$2" = fill ] || [ "$4" -lt %d ]; then
      head -c "$3" /dev/zero | tr '\\0' '\\377'
    elif [ "$4" = %d ]; then
      echo "EIO failing here" >&2; exit 1
    elif [ "$4" = %d ]; then
      head -c $(($3 / 2)) /dev/zero
    fi ;;
  *) exit 2 ;;
esac
''' % (SIZE, HALF, FAIL_AT, PART_AT))

EVAL_PREAD = ('if [ "$4" -lt %d ]; then head -c "$3" /dev/zero | '
              'tr "\\0" "\\377"; fi' % HALF)


def plugin_so(api):
    return os.path.join(BUILDDIR, "tests", "plugins",
                        "nbdkit-nofill%s-plugin.so" % api)


# name, server arguments, whether a read leaving bytes alone may fail
# instead, whether export "fill" exists (and reads at FAIL_AT fail).
CASES = [
    ("C API 1", [plugin_so(1)], False, True),
    ("C API 2", [plugin_so(2)], False, True),
    ("C API 3", [plugin_so(3)], False, True),
    ("C API 3 older struct", [plugin_so("3old")], False, True),
    ("C API 3 under filters", ["--filter=fua", "--filter=offset",
                               plugin_so(3), "offset=0"], False, True),
    ("python", ["python", PY_PLUGIN], False, True),
    ("lua", [LUA_PLUGIN], True, True),
    ("sh", ["sh", SH_PLUGIN], True, True),
    ("eval", ["eval", "get_size=echo %d" % SIZE, "pread=" + EVAL_PREAD],
     True, False),
    ("python filter", ["--filter=" + PY_FILTER, "pattern", str(SIZE)],
     False, False),
    ("lua filter", ["--filter=" + LUA_FILTER, "pattern", str(SIZE)],
     True, False),
    ("python filter under cache", ["--filter=cache", "--filter=" + PY_FILTER,
                                   "pattern", str(SIZE)], False, False),
]
# Cases of a language host this build leaves out (the ThreadSanitizer
# build has none) are not run.
for lang in ("python", "lua"):
    if not os.path.exists(os.path.join(BUILDDIR, "plugins",
                                       "nbdkit-%s-plugin.so" % lang)):
        print("read-zeroes: the %s host is not built: not tested" % lang)
        CASES = [c for c in CASES if lang not in c[0]]
if os.path.exists(os.path.join(BUILDDIR, "plugins",
                               "nbdkit-ocaml-plugin.so")):
    os.environ["XDG_CACHE_HOME"] = t.path("cache")
    CASES.append(("ocaml", ["ocaml", ML_PLUGIN], False, True))
else:
    print("read-zeroes: the OCaml host is not built: not tested")


def nonzero(b):
    return len(b) - b.count(0)


def read_zero(h, what, count, offset, may_fail, fails_at=True):
    """A read in the second half: all zeroes, or (if allowed) an error.
    With FAILS_AT, the plugin fails reads starting at FAIL_AT."""
    try:
        b = h.pread(count, offset)
    except nbd.Error:
        if may_fail or offset == FAIL_AT:
            return
        raise AssertionError("%s: read of %d at %d failed" %
                             (what, count, offset))
    assert offset != FAIL_AT or not fails_at, \
        "%s: read at %d should fail" % (what, offset)
    assert len(b) == count
    n = nonzero(b)
    assert n == 0, "%s: %d of %d bytes at %d are not zero" % (what, n, count,
                                                              offset)


def one_connection(uri, what, may_fail, fails_at, **opts):
    h = t.connect(uri, meta=False, **opts)
    for size in SIZES:
        for k, off in enumerate((HALF, HALF + 3 * size, HALF + 12345,
                                 FAIL_AT, PART_AT, SIZE - size)):
            # Fill the server's buffers with 0xff first.
            b = h.pread(size, (k * size) % (HALF - size))
            assert nonzero(b) > 0, "%s: the first half reads as zero" % what
            read_zero(h, "%s, %d bytes" % (what, size), size, off, may_fail,
                      fails_at)
    h.shutdown()


def cross_connections(uri, what, may_fail):
    # One connection reads 0xff and leaves; then, and meanwhile, another
    # reads the second half.
    fill_uri = uri.replace(":///", ":///fill")
    a = t.connect(fill_uri, meta=False)
    for i in range(4):
        assert a.pread(4 * M, i * 4 * M) == b"\xff" * (4 * M)
    a.shutdown()
    stop = threading.Event()
    errors = []

    def filler():
        try:
            c = t.connect(fill_uri, meta=False)
            while not stop.is_set():
                for size in SIZES:
                    c.pread(size, HALF)
            c.shutdown()
        except Exception as e:  # noqa: BLE001
            errors.append(e)

    th = threading.Thread(target=filler)
    th.start()
    try:
        b = t.connect(uri, meta=False)
        for rnd in range(3):
            for size in SIZES:
                read_zero(b, "%s, across connections" % what, size,
                          HALF + rnd * size, may_fail)
        b.shutdown()
    finally:
        stop.set()
        th.join()
    assert not errors, errors


# To run a part by hand: READ_ZEROES_CASES="C API 1,python" (names as
# above), READ_ZEROES_PARTS=one or cross.
only = os.environ.get("READ_ZEROES_CASES")
parts = os.environ.get("READ_ZEROES_PARTS", "one,cross").split(",")
for what, args, may_fail, has_fill in CASES:
    if only and what not in only.split(","):
        continue
    signal.alarm(120)  # per case: slow under the sanitizers
    uri = t.start(what.replace(" ", "-"), *args, extra=("--log=null",))
    if "one" in parts:
        one_connection(uri, what, may_fail, has_fill)
        one_connection(uri, what + " (simple replies)", may_fail, has_fill,
                       request_structured_replies=False)
    if has_fill and "cross" in parts:
        cross_connections(uri, what, may_fail)
    t.proc.terminate()
    t.proc.wait(timeout=30)
    print("read-zeroes: %s: OK" % what)
print("read-zeroes: OK")
