#!/usr/bin/env bash
# --tls=off|on|require with real clients:
#   off:     plaintext works; a client that insists on TLS is refused
#   on:      plaintext and TLS clients both work, on the same server
#   require: TLS works; plaintext refused
# and tls=require libnbd clients (tls-certificates=) against each.
here="$(cd "$(dirname "$0")" && pwd)"
. "$here/functions.sh"
. "$here/tls-functions.sh"
requires_tls
requires nbdinfo
requires nbdsh
make_pki

# nbdsh_tls URI SCRIPT: run SCRIPT in nbdsh connected to URI (which may
# name local files: tls-certificates=).
nbdsh_tls ()
{
  t nbdsh -c 'h.set_uri_allow_local_file(True)' \
    -c "h.connect_uri('$1')" -c "$2"
}

# --tls=off (credentials given, but TLS off).
start_nbdkit off --tls=off --tls-certificates="$pki" memory 1M
t nbdinfo --size "$uri" >/dev/null || fail "--tls=off: plaintext client refused"
if t nbdinfo --size "$(tls_uri_x509)" >/dev/null 2>&1; then
  fail "--tls=off: a client requiring TLS was accepted"
fi
stop_nbdkit "$pid"

# --tls=on: both, and what one writes the other reads.
start_nbdkit on --tls=on --tls-certificates="$pki" memory 1M
nbdsh_tls "$(tls_uri_x509)" '
assert h.get_tls_negotiated()
h.pwrite(b"written over TLS" * 32, 0)
' || fail "--tls=on: TLS client failed"
nbdsh_tls "$uri" '
assert not h.get_tls_negotiated()
assert h.pread(16, 0) == b"written over TLS"
h.pwrite(b"plain", 4096)
' || fail "--tls=on: plaintext client failed"
nbdsh_tls "$(tls_uri_x509)" '
assert h.pread(5, 4096) == b"plain"
' || fail "--tls=on: TLS client did not see plaintext data"
# libnbd's "allow" mode (tls=1 through nbdsh): upgrades when offered.
t nbdsh -c "
h.set_tls(nbd.TLS_ALLOW)
h.set_tls_certificates('$clientpki')
h.connect_unix('$sock')
assert h.get_tls_negotiated()
" || fail "--tls=on: TLS_ALLOW client did not negotiate TLS"
stop_nbdkit "$pid"

# --tls=require: TLS only.
start_nbdkit req --tls=require --tls-certificates="$pki" memory 1M
nbdsh_tls "$(tls_uri_x509)" 'assert h.get_tls_negotiated()' \
  || fail "--tls=require: TLS client failed"
if t nbdinfo --size "$uri" >/dev/null 2>&1; then
  fail "--tls=require: plaintext client accepted"
fi
# libnbd in TLS_ALLOW mode must upgrade (the server requires it).
t nbdsh -c "
h.set_tls(nbd.TLS_ALLOW)
h.set_tls_certificates('$clientpki')
h.connect_unix('$sock')
assert h.get_tls_negotiated()
" || fail "--tls=require: TLS_ALLOW client did not negotiate TLS"
# Listing exports is refused before TLS, allowed after.
if t nbdinfo --list "$uri" >/dev/null 2>&1; then
  fail "--tls=require: plaintext nbdinfo --list accepted"
fi
t nbdinfo --list "$(tls_uri_x509)" >/dev/null || fail "--tls=require: --list over TLS"
stop_nbdkit "$pid"

# A bad --tls value, and require without credentials, fail at start.
if "$NBDKIT" -U - --tls=maybe memory 1M --run true 2>/dev/null; then
  fail "--tls=maybe accepted"
fi
mkdir empty
if HOME="$tmpdir/empty" timeout 10 "$NBDKIT" -U - --tls=require \
     --tls-certificates="$tmpdir/empty" memory 1M --run true 2>nocert.err; then
  fail "--tls=require started without certificates"
fi
echo "$testname: OK"
