"""Lua host, filters: `--filter=./f.lua` runs a filter script whose
functions get a `next` object calling the layer below; functions it
lacks pass through; only the keys it declares reach it (the others go
to the plugin); open can open the layer below itself with another
export name; errors of the layer below reach the client with their
errno, and errors the script raises with theirs."""

import errno
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import nbdtest  # noqa: E402

nbdtest.require_ours()
BUILDDIR = os.environ.get("BUILDDIR", ".")
if not os.path.exists(os.path.join(BUILDDIR, "filters",
                                   "nbdkit-lua-filter.so")):
    nbdtest.skip("the Lua host is not built")

t = nbdtest.Test()
plugin = t.path("plug.lua")
with open(plugin, "w") as f:
    f.write(r'''
-- The plugin below: 64 KiB of 'p', fails reads at 32768 with ENOSPC.
local data = {}
function open(readonly, exportname, is_tls) return exportname end
function get_size(h) return 65536 end
function export_description(h) return "plugin export " .. h end
function can_write(h) return true end
function pread(h, count, offset, flags)
  if offset == 32768 then error(nbdkit.errno("ENOSPC", "plugin full")) end
  local out = {}
  for i = 0, count - 1 do out[#out + 1] = data[offset + i] or "p" end
  return table.concat(out)
end
function pwrite(h, buf, offset, flags)
  for i = 1, #buf do data[offset + i - 1] = buf:sub(i, i) end
end
''')

filt = t.path("filt.lua")
with open(filt, "w") as f:
    f.write(r'''
-- A filter exercising the next object.
params = { { name = "suffix", default = "!", doc = "appended" } }
local suffix
function config(key, value) suffix = value end
function thread_model() return "parallel" end
function open(ctx, readonly, exportname, is_tls)
  -- Open the layer below under another name.
  ctx:next_open(readonly, "below-" .. exportname)
  return { name = exportname }
end
function get_size(next, h) return next:get_size() - 4096 end
function export_description(next, h)
  return (next:export_description() or "") .. suffix .. h.name
end
function can_write(next, h) return next:can_write() end
function pread(next, h, count, offset, flags)
  if offset == 4096 then
    -- Raised by the filter itself.
    error(nbdkit.errno("EOVERFLOW", "filter says no"))
  end
  local s = next:pread(count, offset, flags)    -- errors of below: raised
  return s:upper()
end
function pwrite(next, h, buf, offset, flags)
  next:pwrite(buf:lower(), offset, flags)
end
''')

uri = t.start("f", "--filter=" + filt, plugin, "suffix=+")
h = t.connect(uri.replace(":///?", ":///xyz?"), full_info=True)
assert h.get_size() == 65536 - 4096
assert h.get_export_description() == "plugin export below-xyz+xyz", \
    h.get_export_description()
assert h.pread(4, 0) == b"PPPP"
h.pwrite(b"ABC", 10)
assert h.pread(4, 9) == b"PABC"
nbdtest.expect_error(lambda: h.pread(512, 32768), errno.ENOSPC, "below")
nbdtest.expect_error(lambda: h.pread(512, 4096), errno.EOVERFLOW, "filter")
assert h.pread(2, 0) == b"PP"

# A key the filter does not declare goes to the plugin, which has no
# config: refused, naming the key.
import subprocess  # noqa: E402
r = subprocess.run([nbdtest.NBDKIT, "-U", "-", "--filter=" + filt, plugin,
                    "other=1", "--run", "true"], capture_output=True,
                   text=True, timeout=30)
assert r.returncode != 0 and "other=1" in r.stderr, r.stderr

# A filter script with only one function: everything else passes.
thin = t.path("thin.lua")
with open(thin, "w") as f:
    f.write('function get_size(next, h) return 1024 end\n')
uri2 = t.start("thin", "--filter=" + thin, plugin)
h2 = t.connect(uri2)
assert h2.get_size() == 1024
assert h2.pread(3, 0) == b"ppp"
h2.pwrite(b"z", 0)
assert h2.pread(2, 0) == b"zp"

# Two Lua filter scripts in one server: both run (see lua-filter-stack).
uri3 = t.start("two", "--filter=" + thin, "--filter=" + thin, plugin)
h3 = t.connect(uri3)
assert h3.get_size() == 1024
assert h3.pread(2, 0) == b"pp"
print("PASS")
