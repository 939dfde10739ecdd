"""filters/lua/retry.lua: a request failing below is retried up to
`retries` times with the delay given (doubling with
retry-exponential), succeeds as soon as the layer below does, and
fails with the last error once the retries are used up."""

import errno
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import nbdtest  # noqa: E402

nbdtest.require_ours()
BUILDDIR = os.environ.get("BUILDDIR", ".")
SRCDIR = os.environ.get("SRCDIR", os.path.join(os.path.dirname(
    os.path.abspath(__file__)), "..", ".."))
if not os.path.exists(os.path.join(BUILDDIR, "filters",
                                   "nbdkit-lua-filter.so")):
    nbdtest.skip("the Lua host is not built")
RETRY = os.path.join(SRCDIR, "filters", "lua", "retry.lua")

t = nbdtest.Test()
calls = t.path("calls")
plugin = t.path("flaky.lua")
with open(plugin, "w") as f:
    f.write(r'''
-- Fails the first `fails` reads with ENOSPC, counting calls in a file.
params = {
  { name = "fails", type = "int", required = true },
  { name = "calls", required = true },
}
local n = 0
function get_size(h) return 1048576 end
function pread(h, count, offset, flags)
  n = n + 1
  local f = assert(io.open(nbdkit.param("calls"), "w"))
  f:write(n)
  f:close()
  if n <= nbdkit.param("fails") then
    error(nbdkit.errno("ENOSPC", "flaky read " .. n))
  end
  return string.rep("\1", count)
end
''')


def ncalls():
    with open(calls) as f:
        return int(f.read())


# 3 failures, 5 retries of 100ms then 200ms, 400ms: the read succeeds
# after 3 retries and about 0.7s.
uri = t.start("ok", "--filter=" + RETRY, plugin, "fails=3", "calls=" + calls,
              "retries=5", "retry-delay=100ms")
h = t.connect(uri)
start = time.monotonic()
assert h.pread(512, 0) == b"\1" * 512
elapsed = time.monotonic() - start
assert ncalls() == 4, ncalls()
assert 0.6 <= elapsed < 5, elapsed

# Without exponential backoff: 3 x 100ms.
uri = t.start("lin", "--filter=" + RETRY, plugin, "fails=3", "calls=" + calls,
              "retries=5", "retry-delay=100ms", "retry-exponential=false")
h = t.connect(uri)
start = time.monotonic()
h.pread(512, 0)
elapsed = time.monotonic() - start
assert ncalls() == 4 and 0.28 <= elapsed < 0.6, (ncalls(), elapsed)

# 2 retries are not enough for 3 failures: the client gets the error,
# after 1 + 2 calls.
uri = t.start("ko", "--filter=" + RETRY, plugin, "fails=3", "calls=" + calls,
              "retries=2", "retry-delay=10ms")
h = t.connect(uri)
nbdtest.expect_error(lambda: h.pread(512, 0), errno.ENOSPC, "exhausted")
assert ncalls() == 3, ncalls()
# ... and the next read succeeds at once.
assert h.pread(512, 0) == b"\1" * 512
assert ncalls() == 4
print("PASS")
