# Shared helpers for the TLS tests: sourced after functions.sh.
#
#   . "$(dirname "$0")/functions.sh"
#   . "$(dirname "$0")/tls-functions.sh"
#   make_pki          # everything below, in $tmpdir (about a second)
#
# make_pki generates, with certtool (gnutls-bin), fresh keys and
# certificates in the test's temp dir; nothing with a private key is
# ever committed.  Directories, laid out as the servers and clients
# expect them:
#
#   $pki        server: ca-cert.pem server-cert.pem server-key.pem
#               (server cert for localhost and 127.0.0.1, signed by CA 1)
#   $clientpki  client: ca-cert.pem client-cert.pem client-key.pem
#               (client cert signed by CA 1: accepted with --tls-verify-peer)
#   $nocertpki  client: ca-cert.pem only (no client certificate)
#   $badclientpki  client: trusts CA 1, but its certificate is signed by
#               CA 2, which the server does not trust
#   $roguepki   server: a server certificate signed by CA 2, which the
#               clients (trusting CA 1) must refuse
#   $psk        PSK file with a key for user alice
#   $badpsk     PSK file with another key for alice
#
# Run directly (not sourced), this file checks itself: it makes the PKI
# and verifies every certificate chain with certtool.  Run as
# "tls-functions.sh make-pki DIR" it only makes the PKI, in DIR.

# requires_tls: skip unless our server (or the one under test) has TLS
# and certtool exists.
requires_tls ()
{
  requires certtool
  requires psktool
  "$NBDKIT" --dump-config 2>/dev/null | grep -q '^tls=yes' \
    || skip "$NBDKIT was built without TLS"
}

_certtool () { certtool "$@" >/dev/null 2>&1 || fail "certtool $*"; }

# _key FILE: a new private key (ECDSA: fast to make, fine for GnuTLS,
# libnbd and qemu).
_key () { _certtool --generate-privkey --key-type=ecdsa --outfile "$1"; }

# _ca DIR CN: a self-signed CA in DIR/ca-cert.pem, DIR/ca-key.pem.
_ca ()
{
  mkdir -p "$1"
  cat > "$1/ca.info" <<EOF
cn = $2
ca
cert_signing_key
expiration_days = 7
EOF
  _key "$1/ca-key.pem"
  _certtool --generate-self-signed --load-privkey "$1/ca-key.pem" \
    --template "$1/ca.info" --outfile "$1/ca-cert.pem"
}

# _cert CADIR OUTDIR ROLE: a ROLE (server or client) certificate and key
# in OUTDIR/ROLE-cert.pem, OUTDIR/ROLE-key.pem signed by the CA in CADIR.
_cert ()
{
  local ca="$1" out="$2" role="$3"
  mkdir -p "$out"
  if [ "$role" = server ]; then
    cat > "$out/$role.info" <<EOF
organization = nbdkit tests
cn = localhost
dns_name = localhost
ip_address = 127.0.0.1
ip_address = ::1
tls_www_server
encryption_key
signing_key
expiration_days = 7
EOF
  else
    cat > "$out/$role.info" <<EOF
country = GB
state = London
locality = London
organization = nbdkit tests
cn = client
tls_www_client
encryption_key
signing_key
expiration_days = 7
EOF
  fi
  _key "$out/$role-key.pem"
  _certtool --generate-certificate --load-ca-certificate "$ca/ca-cert.pem" \
    --load-ca-privkey "$ca/ca-key.pem" --load-privkey "$out/$role-key.pem" \
    --template "$out/$role.info" --outfile "$out/$role-cert.pem"
  rm -f "$out/$role.info"
}

make_pki ()
{
  local ca1="$tmpdir/ca1" ca2="$tmpdir/ca2"
  _ca "$ca1" "nbdkit test CA"
  _ca "$ca2" "untrusted test CA"

  pki="$tmpdir/pki"
  _cert "$ca1" "$pki" server
  cp "$ca1/ca-cert.pem" "$pki/"

  clientpki="$tmpdir/clientpki"
  _cert "$ca1" "$clientpki" client
  cp "$ca1/ca-cert.pem" "$clientpki/"

  nocertpki="$tmpdir/nocertpki"
  mkdir -p "$nocertpki"
  cp "$ca1/ca-cert.pem" "$nocertpki/"

  badclientpki="$tmpdir/badclientpki"
  _cert "$ca2" "$badclientpki" client
  cp "$ca1/ca-cert.pem" "$badclientpki/"

  roguepki="$tmpdir/roguepki"
  _cert "$ca2" "$roguepki" server
  cp "$ca2/ca-cert.pem" "$roguepki/"

  # The CAs' keys are not needed any more.
  rm -f "$ca1/ca-key.pem" "$ca2/ca-key.pem"

  psk="$tmpdir/keys.psk"
  badpsk="$tmpdir/bad.psk"
  psktool -u alice -p "$psk" >/dev/null 2>&1 || fail "psktool"
  psktool -u alice -p "$badpsk" >/dev/null 2>&1 || fail "psktool"
  cmp -s "$psk" "$badpsk" && fail "psktool made the same key twice"
  chmod 0600 "$psk" "$badpsk"
  export pki clientpki nocertpki badclientpki roguepki psk badpsk
}

# tls_uri_x509 [DIR]: an nbds+unix URI for $sock with the client
# certificates in DIR (default $clientpki).
tls_uri_x509 ()
{
  echo "nbds+unix:///?socket=$sock&tls-certificates=${1:-$clientpki}"
}

# tls_uri_psk [FILE]: the same with user alice and a PSK file.
tls_uri_psk ()
{
  echo "nbds+unix://alice@/?socket=$sock&tls-psk-file=${1:-$psk}"
}

# When run rather than sourced: "make-pki DIR" writes the PKI into DIR
# (for the Python tests; the variables' names become file names in
# DIR/pki.env, one NAME=PATH a line), else check the generated PKI.
if [ "${BASH_SOURCE[0]}" = "$0" ] && [ "${1:-}" = make-pki ]; then
  set -eu
  fail () { echo "tls-functions.sh: $*" >&2; exit 1; }
  tmpdir="$2"
  mkdir -p "$tmpdir"
  make_pki
  for v in pki clientpki nocertpki badclientpki roguepki psk badpsk; do
    echo "$v=${!v}"
  done > "$tmpdir/pki.env"
  exit 0
fi
if [ "${BASH_SOURCE[0]}" = "$0" ]; then
  . "$(dirname "$0")/functions.sh"
  requires certtool
  requires psktool
  make_pki
  verify () {
    certtool --verify --load-ca-certificate "$1" --infile "$2" >/dev/null 2>&1
  }
  verify "$pki/ca-cert.pem" "$pki/server-cert.pem" || fail "server cert"
  verify "$pki/ca-cert.pem" "$clientpki/client-cert.pem" || fail "client cert"
  ! verify "$pki/ca-cert.pem" "$roguepki/server-cert.pem" \
    || fail "rogue server cert verifies against CA 1"
  ! verify "$pki/ca-cert.pem" "$badclientpki/client-cert.pem" \
    || fail "bad client cert verifies against CA 1"
  grep -q '^alice:' "$psk" || fail "no alice in $psk"
  echo "$testname: OK"
fi
