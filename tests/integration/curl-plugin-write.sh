#!/usr/bin/env bash
# curl plugin writes, as nbdkit's: without -r an http:// export is
# writable and a write is a PUT of the range with
# "Content-Range: bytes A-B/SIZE".  A small HTTP server that takes
# such PUTs (nginx does not) applies them to its file; what the client
# wrote is then in the file, and reads through the plugin see it.
here="$(cd "$(dirname "$0")" && pwd)"
. "$here/functions.sh"
requires_ours # messages and keys (connections=) of ours
requires nbdsh
cd "$tmpdir"

head -c $(( 1 << 20 )) /dev/urandom > disk.img
cp disk.img want.img
port="$(free_port)"
"$PYTHON" - "$port" disk.img <<'PY' 2> http.log &
import http.server, os, re, sys
path = sys.argv[2]

class H(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def head(self, code, length, extra={}):
        self.send_response(code)
        self.send_header("Content-Length", str(length))
        self.send_header("Accept-Ranges", "bytes")
        for k, v in extra.items():
            self.send_header(k, v)
        self.end_headers()

    def do_HEAD(self):
        self.head(200, os.path.getsize(path))

    def do_GET(self):
        size = os.path.getsize(path)
        m = re.fullmatch(r"bytes=(\d+)-(\d+)", self.headers.get("Range", ""))
        a, b = int(m[1]), min(int(m[2]), size - 1)
        with open(path, "rb") as f:
            f.seek(a)
            data = f.read(b - a + 1)
        self.head(206, len(data),
                  {"Content-Range": "bytes %d-%d/%d" % (a, b, size)})
        self.wfile.write(data)

    def do_PUT(self):
        m = re.fullmatch(r"bytes (\d+)-(\d+)/(\d+)",
                         self.headers.get("Content-Range", ""))
        n = int(self.headers["Content-Length"])
        data = self.rfile.read(n)
        if not m or int(m[2]) - int(m[1]) + 1 != n:
            self.head(400, 0)
            return
        with open(path, "r+b") as f:
            f.seek(int(m[1]))
            f.write(data)
        self.head(204, 0)

http.server.ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), H).serve_forever()
PY
register_pid $!
for _ in $(seq 100); do
  "$PYTHON" -c "import socket,sys; socket.create_connection(('127.0.0.1', $port)).close()" 2>/dev/null && break
  sleep 0.1
done

start_nbdkit rw curl "http://127.0.0.1:$port/disk.img" connections=2
t nbdsh -u "$uri" -c '
import os
assert not h.is_read_only()
chunks = [(0, os.urandom(4096)), (123457, os.urandom(70000)),
          ((1 << 20) - 1000, os.urandom(1000))]
want = bytearray(open("want.img", "rb").read())
for off, data in chunks:
    h.pwrite(data, off)
    want[off:off + len(data)] = data
open("want.img", "wb").write(want)
# Reads through the plugin see the writes.
assert h.pread(1 << 20, 0) == want
'
cmp disk.img want.img || fail "the file on the server is not what was written"
grep -q '"PUT /disk.img HTTP/1.1" 204' http.log || fail "no PUT was made"
echo "curl-plugin-write: OK"
