#!/usr/bin/env bash
# Run every example command line of nbdkit's manual pages (docs/*.pod,
# plugins/*/*.pod, filters/*/*.pod of upstream nbdkit) against a server.
#
# Usage:
#   examples.sh [options] [MIRROR]
#
#   MIRROR       bare git dir of upstream nbdkit (or env NBDKIT_MIRROR)
#
# Options:
#   --bin FILE     server under test (default: build/nbdkit of this tree;
#                  env NBDKIT_BIN)
#   --plugins DIR  where its plugins are (default: plugins/ beside it)
#   --filters DIR  where its filters are (default: filters/ beside it)
#   --debian       also run every example against Debian's nbdkit
#                  (/usr/bin/nbdkit) and list the examples that work
#                  there but not here (NOT-HERE), and those both
#                  pass whose size or first MiB differ (DIFFERS)
#   --ref REF      git ref of the manual pages (default HEAD)
#   --only REGEX   run only examples whose page:line or text matches
#   --results F    write "n<TAB>status<TAB>reason<TAB>page:line<TAB>command
#                  <TAB>size and MD5 of the first MiB served"
#   -j N           examples run at once (default 2)
#   -t SECS        time limit of one example (default 120)
#   --keep         keep the work directory (each example's scratch
#                  directory holds its command and log)
#   -v             also list the synopsis lines that are not run
#
# Each example runs in its own scratch directory, with the files it
# names made up front (a sparse disk.img, a directory, a small tar, xz
# or gzip file, a partitioned or ext2 or LUKS image as the filters
# want).  Listening options (-U, -p, -i, -f) and --run are replaced: the
# server runs captive on a Unix socket, with a check that it answers
# (nbdinfo) and then the example's own --run command when it uses only
# nbdsh, nbdcopy, nbdinfo, hexdump or cat.  --help, --version,
# --dump-config and --dump-plugin examples run as written.
#
# The examples of the curl, ssh, S3 and nbd plugins run against local
# services started once (nginx, sshd, Ceph's radosgw, a second server
# of ours; see README.md), if an example to run needs them, and
# stopped at exit; those whose service does not start are SKIP.
#
# Output: "PASS: page:line command", "FAIL: ... (first error line)",
# "SKIP: ... (why)", then "N passed, N failed, N skipped".
set -u

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
mirror="${NBDKIT_MIRROR:-}"
ref=HEAD
bin="${NBDKIT_BIN:-$root/build/nbdkit}"
plugdir='' filtdir='' debian='' results='' keep=''
export EXAMPLES_JOBS="${EXAMPLES_JOBS:-2}" EXAMPLES_TIMEOUT="${EXAMPLES_TIMEOUT:-120}"

usage () { sed -n '2,/^$/{s/^# \{0,1\}//;p}' "${BASH_SOURCE[0]}"; exit "${1:-0}"; }
while [ $# -gt 0 ]; do
    case "$1" in
        --bin) bin="$2"; shift 2 ;;
        --plugins) plugdir="$2"; shift 2 ;;
        --filters) filtdir="$2"; shift 2 ;;
        --debian) debian=1; shift ;;
        --ref) ref="$2"; shift 2 ;;
        --only) export EXAMPLES_ONLY="$2"; shift 2 ;;
        --results) results="$2"; shift 2 ;;
        -j) EXAMPLES_JOBS="$2"; shift 2 ;;
        -t) EXAMPLES_TIMEOUT="$2"; shift 2 ;;
        --keep) keep=1; shift ;;
        -v) export EXAMPLES_VERBOSE=1; shift ;;
        -h|--help) usage 0 ;;
        -*) echo "unknown option: $1" >&2; usage 1 >&2 ;;
        *) mirror="$1"; shift ;;
    esac
done
[ -n "$mirror" ] || { echo "error: give the upstream git dir (or set NBDKIT_MIRROR)" >&2; exit 2; }
[ -d "$mirror/.git" ] && mirror="$mirror/.git"
if ! git --git-dir="$mirror" rev-parse --verify -q "$ref^{commit}" >/dev/null; then
    echo "error: $mirror has no ref $ref" >&2; exit 2
fi
[ -x "$bin" ] || { echo "error: no server at $bin (build first)" >&2; exit 2; }
bin="$(readlink -f "$bin")"
: "${plugdir:=$(dirname "$bin")/plugins}"
: "${filtdir:=$(dirname "$bin")/filters}"

work="$(mktemp -d /tmp/nbdkit-examples.XXXXXX)"
svc_pids='' runner=''
# shellcheck disable=SC2317
cleanup () {
    local p
    set +e
    trap '' INT TERM
    # The examples' runner kills the examples it runs on SIGTERM.
    if [ -n "$runner" ]; then kill "$runner" 2>/dev/null; wait "$runner" 2>/dev/null; fi
    for p in $svc_pids; do kill "$p" 2>/dev/null; done
    for p in $svc_pids; do wait "$p" 2>/dev/null; done
    if declare -F nginx_stop >/dev/null; then nginx_stop; fi
    if declare -F sshd_stop >/dev/null; then sshd_stop; fi
    if declare -F ceph_stop >/dev/null; then ceph_stop; fi
    if [ -z "$keep" ]; then rm -rf "$work"; else echo "# work directory kept: $work"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

mkdir -p "$work/pods"
git --git-dir="$mirror" archive "$ref" docs plugins filters | tar -x -C "$work/pods"

# shipped DIR... : the plugins and filters a directory holds, as
# "plugin NAME" / "filter NAME" lines (.so files and scripts).
shipped () {
    local kind="$1" d f n; shift
    for d in "$@"; do
        for f in "$d"/nbdkit-*-"$kind".so "$d"/nbdkit-*-"$kind" "$d"/*.lua "$d"/*.py "$d"/*.ml; do
            [ -e "$f" ] || continue
            n="${f##*/}"
            case "$n" in
                nbdkit-*-"$kind".so) n="${n#nbdkit-}"; n="${n%-"$kind".so}" ;;
                nbdkit-*-"$kind") n="${n#nbdkit-}"; n="${n%-"$kind"}" ;;
                *) n="${n%.*}" ;;
            esac
            echo "$kind $n"
        done
    done
}

# A self-signed CA and server/client certificates in DIR, for the
# examples that name --tls-certificates.
cat > "$work/pki.sh" <<'EOF'
set -e
d="$1"; cd "$d"
umask 077
certtool --generate-privkey --outfile ca-key.pem
printf 'cn = examples CA\nca\ncert_signing_key\nexpiration_days = 2\n' > ca.info
certtool --generate-self-signed --load-privkey ca-key.pem --template ca.info --outfile ca-cert.pem
certtool --generate-privkey --outfile server-key.pem
printf 'organization = examples\ncn = localhost\ndns_name = localhost\nip_address = 127.0.0.1\ntls_www_server\nencryption_key\nsigning_key\nexpiration_days = 2\n' > server.info
certtool --generate-certificate --load-ca-certificate ca-cert.pem --load-ca-privkey ca-key.pem \
    --load-privkey server-key.pem --template server.info --outfile server-cert.pem
certtool --generate-privkey --outfile client-key.pem
printf 'country = US\ncn = localhost\ntls_www_client\nencryption_key\nsigning_key\nexpiration_days = 2\n' > client.info
certtool --generate-certificate --load-ca-certificate ca-cert.pem --load-ca-privkey ca-key.pem \
    --load-privkey client-key.pem --template client.info --outfile client-cert.pem
chmod 0644 *.pem
EOF
export EXAMPLES_PKI="$work/pki.sh"

# The check run in captive mode instead of the example's --run: the
# server answers a client, then the example's own --run command runs
# if it only uses tools of this kind.
cat > "$work/check.sh" <<'EOF'
# nbd+unix URI of export $1 with TLS parameters if the server uses TLS.
uri_of () {
    local q="socket=$unixsocket"
    if [ -z "${tls:-}" ]; then echo "nbd+unix:///$1?$q"; return; fi
    if [ -n "${EX_TLS_CERTS:-}" ]; then q="$q&tls-certificates=$EX_TLS_CERTS"; fi
    if [ -n "${EX_TLS_PSK:-}" ]; then q="$q&tls-psk-file=$EX_TLS_PSK"; fi
    echo "nbds+unix://$(id -un)@/$1?$q"
}
u="$uri"
if [ -n "${tls:-}" ]; then u="$(uri_of "${exportname:-}")"; fi
# A server of a directory (file dir=) may have no default export: then
# ask for "file1", a file every scratch directory made for dir= holds.
if ! timeout 20 nbdinfo "$u" >/dev/null 2>&1; then
    u="$(uri_of file1)"
    timeout 20 nbdinfo "$u" >/dev/null ||
        { echo "examples: nbdinfo could not read the export" >&2; exit 1; }
fi
# The size and a digest of the first MiB, to compare servers.
timeout 20 nbdsh -u "$u" -c '
import hashlib
s = h.get_size()
print(s, hashlib.md5(h.pread(min(s, 1 << 20), 0)).hexdigest())' > digest 2>/dev/null || :
# The disk a remote service serves for the example (examples.py).
if [ -f expect ] && [ "$(cat digest 2>/dev/null)" != "$(cat expect)" ]; then
    echo "examples: served $(cat digest 2>/dev/null || echo nothing), the remote disk is $(cat expect) (size, MD5 of the first MiB)" >&2
    exit 1
fi
r="${EX_RUN:-}"
if [ -n "$r" ]; then
    ok=1
    for w in $(printf '%s\n' "$r" | sed 's/|/\n/g' | awk '{print $1}'); do
        case "$w" in nbdsh|nbdcopy|nbdinfo|hexdump|cat) ;; *) ok= ;; esac
    done
    if [ -n "$ok" ] && [ "$tls" = "" ]; then
        timeout "$((${EXAMPLES_TIMEOUT:-120} - 25))" bash -c "$r" >/dev/null || { echo "examples: the example's --run command failed: $r" >&2; exit 1; }
    fi
fi
# The server's exit status is not enough: a server that stops on its
# own (exitwhen) may not report the status of --run.
: > check-ok
exit 0
EOF

# make_bindir DIR REAL: DIR/nbdkit turns an example into a captive run.
make_bindir () {
    local dir="$1" real="$2"
    mkdir -p "$dir"
    cat > "$dir/nbdkit" <<EOF
#!/bin/bash
__real='$real'
__check='$work/check.sh'
EOF
    cat >> "$dir/nbdkit" <<'EOF'
for __a in "$@"; do
    case "$__a" in
        --help|--version|-V|--dump-config|--dump-plugin)
            exec -a nbdkit "$__real" "$@" ;;
    esac
done
__args=() __run=
while [ $# -gt 0 ]; do
    __a="$1"; shift
    case "$__a" in
        -U|--unix|-p|--port|-i|--ipaddr|--ip-addr) shift ;;
        --unix=*|--port=*|--ipaddr=*|--ip-addr=*|-f|--foreground) ;;
        --run) __run="$1"; shift ;;
        --run=*) __run="${__a#--run=}" ;;
        --tls-certificates) export EX_TLS_CERTS="$(readlink -f "$1")"; __args+=("$__a" "$1"); shift ;;
        --tls-certificates=*) export EX_TLS_CERTS="$(readlink -f "${__a#*=}")"; __args+=("$__a") ;;
        --tls-psk) export EX_TLS_PSK="$(readlink -f "$1")"; __args+=("$__a" "$1"); shift ;;
        --tls-psk=*) export EX_TLS_PSK="$(readlink -f "${__a#*=}")"; __args+=("$__a") ;;
        -f[a-zA-Z]*|-[a-zA-Z]*f)
            if [[ "$__a" =~ ^-[fvrsn]+$ ]]; then
                __a="${__a//f/}"; [ "$__a" != - ] && __args+=("$__a")
            else
                __args+=("$__a")
            fi ;;
        *) __args+=("$__a") ;;
    esac
done
export EX_RUN="$__run"
# nbdkit (1.32) sets these in the shell of --run without exporting them.
exec -a nbdkit "$__real" -U - \
    --run "export uri nbd port unixsocket exportname tls; bash $__check" "${__args[@]}"
EOF
    chmod +x "$dir/nbdkit"
    # nbdsh is a Python program that needs Debian's python3 (with the
    # libnbd module), whatever python3 comes first on PATH.
    ln -sf /usr/bin/python3 "$dir/python3"
}

# The servers the examples of the remote plugins reach instead of the
# hosts they name (examples.py rewrites the URL, host=, endpoint-url=,
# socket= and hostname= of each, and makes the disk served).  Each
# starts once, if an example to run needs it; one that does not start
# leaves EX_SVC_<name>_WHY, and its examples SKIP.
svc_down () { export "EX_SVC_$1_WHY=$2"; echo "# $1 service not started: $2"; }
start_http () {
    . "$root/tests/services/nginx.sh"
    # The login services the header scripts call answer a token, which
    # /bearer/ then wants in every request; /cookie/ sets a cookie, which
    # it wants in every request but HEAD (how the cookie script gets it).
    mkdir -p "$work/svc/nginx/conf.d"
    cat > "$work/svc/nginx/conf.d/examples.conf" <<CONF
    location = /login { default_type application/json; return 200 '{"token": "examples-token"}\n'; }
    location = /token { default_type application/json; return 200 '{"token": "examples-token"}\n'; }
    location /bearer/ {
      alias $work/;
      if (\$http_authorization != "Bearer examples-token") { return 401; }
    }
    location /cookie/ {
      alias $work/;
      add_header Set-Cookie "vmware_soap_session=examples; Path=/; HttpOnly";
      set \$ok "";
      if (\$request_method = HEAD) { set \$ok 1; }
      if (\$cookie_vmware_soap_session = examples) { set \$ok 1; }
      if (\$ok = "") { return 403; }
    }
CONF
    if nginx_start "$work" "$work/svc/nginx" >"$work/svc/nginx.log" 2>&1; then
        export EX_SVC_http=1 EX_HTTP_ROOT="$work" EX_HTTP_URL="$NGINX_URL" EX_HTTPS_URL="$NGINX_HTTPS_URL"
    else
        svc_down http "$(tail -n1 "$work/svc/nginx.log")"
    fi
}
start_ssh () {
    . "$root/tests/services/sshd.sh"
    mkdir -p "$work/svc/sshd"
    local rc=0
    sshd_start "$work/svc/sshd" >"$work/svc/sshd.log" 2>&1 || rc=$?
    if [ $rc = 0 ]; then
        export EX_SVC_ssh=1 EX_SSH_PORT="$SSHD_PORT" EX_SSH_USER="$SSHD_USER" \
            EX_SSH_KEY="$SSHD_KEY" EX_SSH_KNOWN_HOSTS="$SSHD_KNOWN_HOSTS"
    elif [ $rc = 77 ]; then
        svc_down ssh "$SSHD_BIN is not installed"
    else
        svc_down ssh "$(tail -n1 "$work/svc/sshd.log")"
    fi
    trap cleanup EXIT   # sshd_start sets its own
}
start_s3 () {
    if ! command -v radosgw >/dev/null || ! command -v ceph-mon >/dev/null; then
        svc_down s3 "Ceph (ceph-mon, radosgw) is not installed"; return
    fi
    if ! /usr/bin/python3 -c 'import boto3' 2>/dev/null; then
        svc_down s3 "python3-boto3 is not installed"; return
    fi
    . "$root/tests/services/ceph.sh"
    if ceph_start "$work/c" --rgw --no-pool >"$work/svc/ceph.log" 2>&1; then
        export EX_SVC_s3=1 EX_RGW_ENDPOINT="$RGW_ENDPOINT" \
            EX_RGW_ACCESS_KEY="$RGW_ACCESS_KEY" EX_RGW_SECRET_KEY="$RGW_SECRET_KEY"
    else
        svc_down s3 "$(grep -m1 ceph_start "$work/svc/ceph.log")"
    fi
    trap cleanup EXIT   # ceph_start puts its own in front
}
# Our server, on a Unix socket (plain) and on loopback TCP with TLS.
start_nbd () {
    local d="$work/svc/nbd" port
    mkdir -p "$d/pki"
    bash "$EXAMPLES_PKI" "$d/pki" >/dev/null 2>&1 || { svc_down nbd "certtool failed"; return; }
    /usr/bin/python3 -c 'import sys
p = bytes(i % 251 for i in range(1 << 20))
with open(sys.argv[1], "wb") as f:
    f.write(p); f.truncate(8 << 20)' "$d/disk.img"
    port="$(/usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
    "$bin" -f -r -U "$d/sock" file "$d/disk.img" </dev/null >"$d/unix.log" 2>&1 &
    svc_pids="$svc_pids $!"
    "$bin" -f -r -i 127.0.0.1 -p "$port" --tls=on --tls-certificates="$d/pki" \
        file "$d/disk.img" </dev/null >"$d/tcp.log" 2>&1 &
    svc_pids="$svc_pids $!"
    for _ in $(seq 50); do
        if nbdinfo --size "nbd+unix:///?socket=$d/sock" >/dev/null 2>&1 &&
           nbdinfo --size "nbd://127.0.0.1:$port" >/dev/null 2>&1; then
            export EX_SVC_nbd=1 EX_NBD_SOCK="$d/sock" EX_NBD_PORT="$port" EX_NBD_PKI="$d/pki"
            return
        fi
        sleep 0.2
    done
    svc_down nbd "$(cat "$d/unix.log" "$d/tcp.log" | head -n1)"
}
start_services () {
    local s
    mkdir -p "$work/svc"
    for s in $(/usr/bin/python3 "$here/examples.py" needs "$work/pods" "$1"); do
        "start_$s"
    done
}

run_set () {
    local name="$1" real="$2" out="$3"; shift 3
    make_bindir "$work/bin-$name" "$real"
    { shipped plugin "$1"; shipped filter "$2"; } > "$work/shipped-$name"
    mkdir -p "$work/run-$name"
    # In the background, for a signal to reach the traps at once.
    /usr/bin/python3 "$here/examples.py" run "$work/pods" "$work/run-$name" \
        "$work/bin-$name" "$work/shipped-$name" "$out" &
    runner=$!
    wait "$runner"
    local rc=$?
    runner=''
    return $rc
}

echo "# nbdkit under test: $bin ($("$bin" --version 2>/dev/null | head -n1))"
echo "# manual pages: $(git --git-dir="$mirror" describe --tags --always "$ref")"
shipped plugin "$plugdir" > "$work/shipped-services"
start_services "$work/shipped-services"
run_set ours "$bin" "$work/ours.tsv" "$plugdir" "$filtdir"
status=$?
if [ -n "$results" ]; then cp "$work/ours.tsv" "$results"; fi

if [ -n "$debian" ]; then
    deb=/usr/bin/nbdkit
    dlib="$(dirname "$(find /usr/lib -path '*/nbdkit/plugins' -type d 2>/dev/null | head -n1)")"
    echo
    echo "# the same examples against Debian's nbdkit: $deb ($("$deb" --version 2>/dev/null | head -n1))"
    run_set debian "$deb" "$work/debian.tsv" "$dlib/plugins" "$dlib/filters" > "$work/debian.out"
    tail -n1 "$work/debian.out"
    # Examples that pass with Debian's nbdkit but not here.
    awk -F'\t' '
        NR == FNR { deb[$1] = $2; ddig[$1] = $6; next }
        deb[$1] == "PASS" && $2 != "PASS" {
            printf "NOT-HERE: %s  %s\n      (%s here: %s)\n", $4, substr($5, 1, 110), $2, $3
        }
        deb[$1] != "PASS" && $2 == "PASS" { beyond++ }
        deb[$1] == "PASS" && $2 == "PASS" && ddig[$1] != "" && $6 != "" && ddig[$1] != $6 {
            printf "DIFFERS: %s  %s\n      (size and MD5 of the first MiB: %s here, %s there)\n", $4, substr($5, 1, 110), $6, ddig[$1]
        }
        END { printf "# %d examples pass here but not with Debian'"'"'s nbdkit\n", beyond }
    ' "$work/debian.tsv" "$work/ours.tsv"
fi
exit $status
