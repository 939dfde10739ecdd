#!/usr/bin/env bash
# What a plugin sees of TLS: open's is_tls argument and nbdkit_is_tls ()
# are 1 on a connection upgraded with STARTTLS and 0 on a plaintext one
# (--tls=on serves both).  Checked with the test plugin (tls-log=), and
# with a Python plugin when the Python host is built (open's is_tls and
# nbdkit.is_tls (), read back through the disk's contents).
here="$(cd "$(dirname "$0")" && pwd)"
. "$here/functions.sh"
. "$here/tls-functions.sh"
requires_ours
requires_tls
requires nbdinfo
requires nbdsh
make_pki
: "${TESTPLUG:=$BUILDDIR/tests/plugins/nbdkit-testplug-plugin.so}"
[ -f "$TESTPLUG" ] || skip "test plugin not built ($TESTPLUG)"

nbdsh_tls ()
{
  t nbdsh -c 'h.set_uri_allow_local_file(True)' \
    -c "h.connect_uri('$1')" -c "$2"
}

start_nbdkit tp --tls=on --tls-certificates="$pki" "$TESTPLUG" \
  tls-log="$tmpdir/tls.log"
t nbdinfo --size "$uri" >/dev/null || fail "plaintext client"
t nbdinfo --size "$(tls_uri_x509)" >/dev/null || fail "TLS client"
t nbdinfo --size "nbd+unix:///foo?socket=$sock" >/dev/null || fail "plaintext, export foo"
t nbdinfo --size "nbds+unix:///foo?socket=$sock&tls-certificates=$clientpki" \
  >/dev/null || fail "TLS, export foo"
sed 's/^/  | /' tls.log
expected="open export= is_tls=0 nbdkit_is_tls=0
open export= is_tls=1 nbdkit_is_tls=1
open export=foo is_tls=0 nbdkit_is_tls=0
open export=foo is_tls=1 nbdkit_is_tls=1"
assert_eq "test plugin's view of TLS" "$(cat tls.log)" "$expected"
stop_nbdkit "$pid"

# The same through a Python plugin, if there is a Python host.
if "$NBDKIT" python --dump-plugin >/dev/null 2>&1; then
  cat > istls.py <<'PY'
"""Reports, as the disk's contents, what open saw of TLS."""
import nbdkit

API_VERSION = 3


def open(readonly, exportname, is_tls):
    return ("is_tls=%d nbdkit_is_tls=%d" %
            (is_tls, nbdkit.is_tls())).encode().ljust(512)


def get_size(h):
    return 512


def pread(h, buf, offset, flags):
    buf[:] = h[offset:offset + len(buf)]
PY
  start_nbdkit py --tls=on --tls-certificates="$pki" python "$tmpdir/istls.py"
  nbdsh_tls "$uri" \
    'assert h.pread(24, 0) == b"is_tls=0 nbdkit_is_tls=0", h.pread(24, 0)' \
    || fail "python plugin over plaintext"
  nbdsh_tls "$(tls_uri_x509)" \
    'assert h.pread(24, 0) == b"is_tls=1 nbdkit_is_tls=1", h.pread(24, 0)' \
    || fail "python plugin over TLS"
  stop_nbdkit "$pid"
else
  note "no Python host: checked with the test plugin only"
fi
echo "$testname: OK"
