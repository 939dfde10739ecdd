"""Shared helpers for the Python integration tests.

    import nbdtest
    t = nbdtest.Test()                 # temp dir, cleanup at exit
    uri = t.start("mem", "memory", "1G")
    h = t.connect(uri)

Environment: NBDKIT (server under test, default ./nbdkit in BUILDDIR),
OURS=1 when the server is ours.  Exit codes: 0 pass, 77 skip, else fail.
"""

import atexit
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

try:
    import nbd
except ImportError:
    print("SKIP: python3 nbd module missing")
    sys.exit(77)

SKIP = 77
NBDKIT = os.environ.get("NBDKIT") or os.path.join(
    os.environ.get("BUILDDIR", "."), "nbdkit")
if "/" in NBDKIT:
    NBDKIT = os.path.abspath(NBDKIT)
OURS = os.environ.get("OURS") == "1" and NBDKIT != "/usr/bin/nbdkit"
# nbdsh and friends must find the system python3.
os.environ["PATH"] = "/usr/bin:/bin:" + os.environ.get("PATH", "")


def skip(msg):
    print("SKIP: %s" % msg)
    sys.exit(SKIP)


def require_ours():
    if not OURS:
        skip("tests behaviour only our server has (OURS!=1)")


class Test:
    def __init__(self):
        self.tmpdir = tempfile.mkdtemp(prefix="nbdtest.")
        self.procs = []
        self.handles = []
        atexit.register(self.cleanup)
        # Exit through atexit (which kills the servers) on SIGTERM and
        # when the whole test runs too long.
        signal.signal(signal.SIGTERM, lambda *a: sys.exit(1))
        signal.signal(signal.SIGALRM, self._timeout)
        signal.alarm(50)

    @staticmethod
    def _timeout(*args):
        print("FAIL: test timed out", file=sys.stderr)
        sys.exit(1)

    def path(self, name):
        return os.path.join(self.tmpdir, name)

    def start(self, name, *args, extra=(), pass_fds=()):
        """Start a foreground server on a private Unix socket; return its
        URI once the pidfile exists."""
        sock = self.path(name + ".sock")
        pidfile = self.path(name + ".pid")
        cmd = [NBDKIT, "-U", sock, "-P", pidfile, "-f", *extra, *args]
        # A server that ran under this name before left its pidfile.
        if os.path.exists(pidfile):
            os.unlink(pidfile)
        p = subprocess.Popen(cmd, pass_fds=pass_fds)
        self.procs.append(p)
        deadline = time.time() + 10
        while not (os.path.exists(pidfile) and os.path.getsize(pidfile)):
            if p.poll() is not None:
                raise AssertionError("server exited %d: %s" %
                                     (p.returncode, cmd))
            if time.time() > deadline:
                raise AssertionError("server did not start: %s" % cmd)
            time.sleep(0.05)
        self.sock = sock
        self.proc = p
        return "nbd+unix:///?socket=" + sock

    def spawn(self, cmd, **kw):
        p = subprocess.Popen(cmd, **kw)
        self.procs.append(p)
        return p

    def connect(self, uri, meta=True, **opts):
        """Connect a new handle to uri, asking for base:allocation unless
        meta=False; opts are set_OPTION(value) calls made first."""
        h = nbd.NBD()
        if meta:
            h.add_meta_context(nbd.CONTEXT_BASE_ALLOCATION)
        for k, v in opts.items():
            getattr(h, "set_" + k)(v)
        h.connect_uri(uri)
        self.handles.append(h)
        return h

    def cleanup(self):
        for h in self.handles:
            try:
                h.shutdown()
            except Exception:
                pass
        for p in self.procs:
            if p.poll() is None:
                p.terminate()
        for p in self.procs:
            try:
                p.wait(timeout=5)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        shutil.rmtree(self.tmpdir, ignore_errors=True)


def expect_error(fn, errnum=None, what=""):
    """Call fn; it must raise nbd.Error, with errno errnum if given."""
    try:
        fn()
    except nbd.Error as e:
        if errnum is not None and e.errnum != errnum:
            raise AssertionError("%s: expected errno %d, got %r (%s)" %
                                 (what, errnum, e.errnum, e.string))
        return e
    raise AssertionError("%s: expected an error, got success" % what)


def check_extents(h, offset, length, flags=0):
    """Return the base:allocation extents as a list of (offset, len, flags)."""
    out = []

    def cb(metacontext, off, entries, err):
        if metacontext != nbd.CONTEXT_BASE_ALLOCATION:
            return 0
        o = off
        for i in range(0, len(entries), 2):
            out.append((o, entries[i], entries[i + 1]))
            o += entries[i]
        return 0

    h.block_status(length, offset, cb, flags)
    return out


# Reloading (the *-reload tests): the core's messages, a script
# replaced in one step, and waiting for what the server logs.
RELOAD_FAILED = "reload failed: the code loaded before goes on serving"
RELOADED = "reloaded: new connections use the new code"


def write_atomic(path, text):
    """Replace the file PATH with TEXT at once (a rename)."""
    with open(path + ".tmp", "w") as f:
        f.write(text)
    os.rename(path + ".tmp", path)


def wait_log(log, needle, n, timeout=10):
    """Wait until the file LOG holds NEEDLE N times; return its text."""
    end = time.time() + timeout
    while True:
        with open(log) as f:
            text = f.read()
        if text.count(needle) >= n:
            return text
        if time.time() > end:
            raise AssertionError("%r not logged %d times:\n%s"
                                 % (needle, n, text))
        time.sleep(0.05)
