#!/usr/bin/python3
"""Lua host, filters: backend:next_context_open opens a context of the
filter's own on the layer below, independent of the client's (here
under another export name), usable from any later callback and from
every connection until next:close(); a closed one, and closing the
client's `next`, raise errors instead of reaching the layer below."""

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
plugin = t.path("names.lua")
with open(plugin, "w") as f:
    f.write(r'''
-- Each export reads as the first letter of its name ("c" for "").
opens = 0
function open(readonly, exportname, is_tls)
  opens = opens + 1
  return exportname == "" and "c" or exportname:sub(1, 1)
end
function get_size(h) return 65536 end
function pread(h, count, offset, flags) return string.rep(h, count) end
function export_description(h) return "opens=" .. opens end
''')
filt = t.path("side.lua")
with open(filt, "w") as f:
    f.write(r'''
-- Reads at 4096 and beyond come from a context of the filter's own,
-- opened once under the export name "side" and shared by clients.
side = nil
function thread_model() return "parallel" end
function open(ctx, readonly, exportname, is_tls)
  if side == nil then side = ctx:backend():next_context_open(true, "side") end
  return exportname
end
function pread(next, h, count, offset, flags)
  if h == "closeside" then
    side:close()
    return side:pread(count, offset, flags)
  end
  if h == "closenext" then next:close() end
  if offset >= 4096 then return side:pread(count, offset, flags) end
  return next:pread(count, offset, flags)
end
function cleanup(backend) if side then side:close() end end
''')
uri = t.start("side", "--filter=" + filt, plugin)
for i in range(2):
    h = t.connect(uri, full_info=True)
    assert h.pread(4, 0) == b"cccc"
    assert h.pread(4, 4096) == b"ssss"
    # The plugin was opened once for the filter's context, then once
    # per client.
    assert h.get_export_description() == "opens=%d" % (i + 2), \
        h.get_export_description()

h = t.connect(uri.replace(":///", ":///closenext"))
nbdtest.expect_error(lambda: h.pread(4, 0), None, "next:close()")
# The filter's own context still works for the others.
h = t.connect(uri)
assert h.pread(4, 8192) == b"ssss"
h = t.connect(uri.replace(":///", ":///closeside"))
nbdtest.expect_error(lambda: h.pread(4, 0), None, "closed context")
h = t.connect(uri)
nbdtest.expect_error(lambda: h.pread(4, 4096), None, "closed context")
assert h.pread(4, 0) == b"cccc"
print("PASS")
