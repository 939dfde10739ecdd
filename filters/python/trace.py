"""Trace every request to a file or to the debug log.

  nbdkit --filter=./trace.py PLUGIN ... [tracefile=FILE]

One line per request: the connection, the command, its offset, count and
flags, the result (ok, or the errno's name) and how long the layers
below took, in seconds:

  conn=1 pread offset=0 count=4096 flags=0 result=ok duration=0.000021
  conn=1 zero offset=0 count=65536 flags=may_trim|fua result=ENOTSUP ...

plus a line as each connection opens and closes.  With tracefile=FILE
the lines are appended to FILE; without it they go to nbdkit's debug
log (shown with -v).  The filter changes nothing: every request goes on
to the layer below as it came.
"""
import builtins
import errno
import itertools
import threading
import time

import nbdkit

API_VERSION = 3

tracefile = nbdkit.Param("tracefile", nbdkit.STRING,
                         doc="append the trace to FILE (default: the"
                             " debug log, shown with -v)")
params = [tracefile]

_lock = threading.Lock()
_out = None
_conns = itertools.count(1)
_FLAGS = [(nbdkit.FLAG_MAY_TRIM, "may_trim"), (nbdkit.FLAG_FUA, "fua"),
          (nbdkit.FLAG_REQ_ONE, "req_one"),
          (nbdkit.FLAG_FAST_ZERO, "fast_zero")]


def config_complete():
    global _out
    if tracefile.value:
        _out = builtins.open(tracefile.value, "a", buffering=1)


def _log(line):
    if _out is None:
        nbdkit.debug("trace: " + line)
    else:
        with _lock:
            _out.write(line + "\n")


def _flags(flags):
    names = [n for bit, n in _FLAGS if flags & bit]
    return "|".join(names) if names else "0"


def _trace(h, cmd, offset, count, flags, fn, *args):
    """Call fn(*args) (the layer below) and log the request."""
    result = "ok"
    t0 = time.monotonic()
    try:
        return fn(*args)
    except OSError as e:
        result = errno.errorcode.get(e.errno, str(e.errno))
        raise
    except BaseException:
        result = "EIO"
        raise
    finally:
        _log("conn=%d %s offset=%d count=%d flags=%s result=%s duration=%.6f"
             % (h, cmd, offset, count, _flags(flags), result,
                time.monotonic() - t0))


def open(next, readonly, exportname, tls):
    h = builtins.next(_conns)
    _log("conn=%d open export=%r readonly=%s tls=%s"
         % (h, exportname, readonly, tls))
    return h


def close(h):
    _log("conn=%d close" % h)


def pread(next, h, buf, offset, flags):
    # Returning what next.pread gave passes holes and lent data on.
    return _trace(h, "pread", offset, len(buf), flags,
                  next.pread, buf, offset, flags)


def pwrite(next, h, buf, offset, flags):
    _trace(h, "pwrite", offset, len(buf), flags,
           next.pwrite, buf, offset, flags)


def flush(next, h, flags):
    _trace(h, "flush", 0, 0, flags, next.flush, flags)


def trim(next, h, count, offset, flags):
    _trace(h, "trim", offset, count, flags, next.trim, count, offset, flags)


def zero(next, h, count, offset, flags):
    _trace(h, "zero", offset, count, flags, next.zero, count, offset, flags)


def cache(next, h, count, offset, flags):
    _trace(h, "cache", offset, count, flags, next.cache, count, offset, flags)


def extents(next, h, count, offset, flags):
    return _trace(h, "extents", offset, count, flags,
                  next.extents, count, offset, flags)
