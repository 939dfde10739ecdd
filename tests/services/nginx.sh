# nginx.sh: start a private nginx for the tests and benchmarks.
#
#   . "$SRCDIR/tests/services/nginx.sh"
#   nginx_start DOCROOT WORKDIR     # serve DOCROOT; config, logs in WORKDIR
#   ... $NGINX_URL/data/FILE, $NGINX_HTTPS_URL/data/FILE, $NGINX_CA ...
#   nginx_stop                      # kill it (also done at exit)
#   nginx_start_again               # same config, same ports
#
# nginx runs in the foreground as one process (daemon off, no master)
# with a private configuration on two free 127.0.0.1 ports, one HTTP
# and one HTTPS with a certificate for 127.0.0.1 signed by a CA made
# for this run ($NGINX_CA).  Every location serves DOCROOT:
#
#   /data/      plain, byte ranges allowed
#   /norange/   ignores Range (max_ranges 0): 200 and the whole file
#   /redirect/  302 to the same name under /data/
#   /auth/      basic auth, user $NGINX_USER, password $NGINX_PASSWORD
#   /slow/      each response limited to $NGINX_SLOW_RATE bytes/s
#
# A test adds locations of its own in WORKDIR/conf.d/*.conf, written
# before nginx_start, or changed then read by nginx_stop and
# nginx_start_again (SIGHUP does not work without a master process).
#
# The access log ($NGINX_ACCESS_LOG) records the method, status, Range,
# User-Agent, Cookie and X-Test headers of each request.
#
# nginx_start returns 77 (skip) when nginx is not installed, so tests
# can write `nginx_start ... || exit $?`; with functions.sh sourced, the
# process is registered to be killed on exit; otherwise the caller's
# EXIT trap must call nginx_stop, or, if it has none, this file sets
# one that does.

: "${NGINX:=$(command -v nginx || echo /usr/sbin/nginx)}"
: "${NGINX_SLOW_RATE:=1m}"
NGINX_USER=disk
NGINX_PASSWORD=s3cret
NGINX_PID=

_nginx_free_port ()
{
  "${PYTHON:-/usr/bin/python3}" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

# A CA and a server certificate for 127.0.0.1 and localhost.
_nginx_make_certs ()
{
  local d="$1"
  if command -v certtool >/dev/null 2>&1; then
    cat > "$d/ca.info" <<EOF
cn = nbdkit test CA
ca
cert_signing_key
expiration_days = 2
EOF
    cat > "$d/server.info" <<EOF
cn = 127.0.0.1
ip_address = 127.0.0.1
dns_name = localhost
tls_www_server
encryption_key
signing_key
expiration_days = 2
EOF
    certtool --generate-privkey --key-type=ecdsa --outfile "$d/ca.key" 2>/dev/null &&
    certtool --generate-self-signed --load-privkey "$d/ca.key" \
      --template "$d/ca.info" --outfile "$d/ca.pem" 2>/dev/null &&
    certtool --generate-privkey --key-type=ecdsa --outfile "$d/server.key" 2>/dev/null &&
    certtool --generate-certificate --load-privkey "$d/server.key" \
      --load-ca-certificate "$d/ca.pem" --load-ca-privkey "$d/ca.key" \
      --template "$d/server.info" --outfile "$d/server.pem" 2>/dev/null
  else
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 \
      -nodes -days 2 -subj "/CN=nbdkit test CA" \
      -keyout "$d/ca.key" -out "$d/ca.pem" 2>/dev/null &&
    openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
      -subj "/CN=127.0.0.1" -keyout "$d/server.key" -out "$d/server.csr" \
      2>/dev/null &&
    printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\n' > "$d/ext.cnf" &&
    openssl x509 -req -in "$d/server.csr" -CA "$d/ca.pem" -CAkey "$d/ca.key" \
      -CAcreateserial -days 2 -extfile "$d/ext.cnf" -out "$d/server.pem" \
      2>/dev/null
  fi
}

_nginx_write_conf ()
{
  local d="$NGINX_DIR" root="$NGINX_ROOT"
  cat > "$d/locations.conf" <<EOF
    root $root;
    absolute_redirect off;
    location /data/ { alias $root/; }
    location /norange/ { alias $root/; max_ranges 0; }
    location /redirect/ {
      rewrite ^/redirect/(.*)\$ /data/\$1 redirect;
    }
    location /auth/ {
      alias $root/;
      auth_basic "disk images";
      auth_basic_user_file $d/htpasswd;
    }
    location /slow/ { alias $root/; limit_rate $NGINX_SLOW_RATE; }
    include $d/conf.d/*.conf;
EOF
  printf '%s:{PLAIN}%s\n' "$NGINX_USER" "$NGINX_PASSWORD" > "$d/htpasswd"
  cat > "$d/nginx.conf" <<EOF
daemon off;
master_process off;
worker_processes 1;
pid $d/nginx.pid;
error_log $d/error.log warn;
events { worker_connections 256; }
http {
  client_body_temp_path $d/body;
  proxy_temp_path $d/proxy;
  fastcgi_temp_path $d/fastcgi;
  uwsgi_temp_path $d/uwsgi;
  scgi_temp_path $d/scgi;
  default_type application/octet-stream;
  sendfile on;
  keepalive_requests 100000;
  log_format tests '\$request_method \$uri \$status range="\$http_range" '
                   'ua="\$http_user_agent" cookie="\$http_cookie" '
                   'x_test="\$http_x_test" conn=\$connection';
  access_log $d/access.log tests;
  server {
    listen 127.0.0.1:$NGINX_PORT;
    include $d/locations.conf;
  }
  server {
    listen 127.0.0.1:$NGINX_HTTPS_PORT ssl;
    ssl_certificate $d/server.pem;
    ssl_certificate_key $d/server.key;
    include $d/locations.conf;
  }
}
EOF
}

# Start nginx on the ports of NGINX_PORT/NGINX_HTTPS_PORT; wait until
# both answer.
_nginx_run ()
{
  local i
  : > "$NGINX_DIR/error.log"
  "$NGINX" -p "$NGINX_DIR" -c "$NGINX_DIR/nginx.conf" -e "$NGINX_DIR/error.log" \
    </dev/null >>"$NGINX_DIR/stderr" 2>&1 &
  NGINX_PID=$!
  if declare -F register_pid >/dev/null; then
    register_pid "$NGINX_PID"
  fi
  for i in $(seq 100); do
    if ! kill -0 "$NGINX_PID" 2>/dev/null; then
      echo "nginx failed to start:" >&2
      cat "$NGINX_DIR/stderr" "$NGINX_DIR/error.log" >&2
      return 1
    fi
    if "${PYTHON:-/usr/bin/python3}" - "$NGINX_PORT" "$NGINX_HTTPS_PORT" <<'PY' 2>/dev/null
import socket, sys
for p in sys.argv[1:]:
    socket.create_connection(("127.0.0.1", int(p)), timeout=1).close()
PY
    then
      return 0
    fi
    sleep 0.1
  done
  echo "nginx did not start listening" >&2
  return 1
}

nginx_start ()
{
  [ -x "$NGINX" ] || { echo "nginx not installed: skipped"; return 77; }
  NGINX_ROOT="$(cd "$1" && pwd)"
  NGINX_DIR="$(mkdir -p "$2" && cd "$2" && pwd)"
  mkdir -p "$NGINX_DIR"/{body,proxy,fastcgi,uwsgi,scgi,conf.d}
  _nginx_make_certs "$NGINX_DIR" || { echo "could not make certificates" >&2; return 1; }
  NGINX_CA="$NGINX_DIR/ca.pem"
  NGINX_PORT="$(_nginx_free_port)"
  NGINX_HTTPS_PORT="$(_nginx_free_port)"
  while [ "$NGINX_HTTPS_PORT" = "$NGINX_PORT" ]; do
    NGINX_HTTPS_PORT="$(_nginx_free_port)"
  done
  NGINX_URL="http://127.0.0.1:$NGINX_PORT"
  NGINX_HTTPS_URL="https://127.0.0.1:$NGINX_HTTPS_PORT"
  NGINX_ACCESS_LOG="$NGINX_DIR/access.log"
  _nginx_write_conf
  # Without functions.sh, and if the caller has no EXIT trap of its own
  # (which then must call nginx_stop), kill nginx at exit.
  if ! declare -F register_pid >/dev/null && [ -z "$(trap -p EXIT)" ]; then
    trap nginx_stop EXIT
  fi
  _nginx_run
}

nginx_start_again ()
{
  _nginx_run
}

# Kill nginx (TERM, then KILL) and wait until it is gone.
nginx_stop ()
{
  local p="$NGINX_PID" i
  [ -n "$p" ] || return 0
  kill "$p" 2>/dev/null || true
  for i in $(seq 50); do
    kill -0 "$p" 2>/dev/null || break
    sleep 0.1
  done
  kill -9 "$p" 2>/dev/null || true
  wait "$p" 2>/dev/null || true
  NGINX_PID=
  return 0
}
