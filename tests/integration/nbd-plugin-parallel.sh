#!/usr/bin/env bash
# nbd plugin: requests of one client are in flight together on the
# connection to the backend.  Each read takes a second in the backend;
# four at once through the proxy take about one second, not four.
. "$(dirname "$0")/functions.sh"
requires_python_nbd
cd "$tmpdir"

start_nbdkit slow eval thread_model='echo parallel' get_size='echo 1M' \
  pread='sleep 1; head -c $3 /dev/zero'
start_nbdkit px nbd socket="$sock"
t "$PYTHON" - "$uri" <<'PY'
import nbd, sys, time
h = nbd.NBD()
h.connect_uri(sys.argv[1])
bufs = [nbd.Buffer(4096) for _ in range(4)]
start = time.monotonic()
cookies = [h.aio_pread(b, i * 4096) for i, b in enumerate(bufs)]
while h.aio_in_flight() > 0:
    h.poll(-1)
assert all(b.to_bytearray() == bytes(4096) for b in bufs)
took = time.monotonic() - start
print("4 reads of 1 s each took %.2f s" % took)
assert took < 2.5, took
PY
echo "nbd-plugin-parallel: OK"
