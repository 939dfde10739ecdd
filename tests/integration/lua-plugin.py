"""Lua host, plugins: every callback of a script reaches clients as it
should through libnbd: typed parameters become Lua values, open sees
the export name, pread answers with a string or with holes and lent
data, writes arrive as strings, extents and exports come from tables,
capabilities from booleans and constants, and errors raised with an
errno reach the client with that errno (others as EIO)."""

import errno
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import nbdtest  # noqa: E402
from nbdtest import nbd  # noqa: E402

nbdtest.require_ours()
BUILDDIR = os.environ.get("BUILDDIR", ".")
if not os.path.exists(os.path.join(BUILDDIR, "plugins",
                                   "nbdkit-lua-plugin.so")):
    nbdtest.skip("the Lua host is not built")

t = nbdtest.Test()
script = t.path("p.lua")
with open(script, "w") as f:
    f.write(r'''
-- A plugin exercising the Lua host.
params = {
  { name = "size", type = "size", required = true, doc = "disk size" },
  { name = "mode", type = "enum", choices = { "a", "b" }, default = "a" },
  { name = "ro", type = "bool", default = false },
  { name = "count", type = "int", default = 7 },
  { name = "tag", type = "list" },
}
local seen = {}
function config(key, value)
  seen[#seen + 1] = key .. "=" .. tostring(value) .. ":" .. (math.type(value) or "nil")
                    .. type(value)
end
local disk = {}          -- byte offset -> string of one byte (sparse)
local size
function config_complete()
  size = nbdkit.param("size")
  assert(math.type(size) == "integer")
  assert(nbdkit.param("ro") == false or nbdkit.param("ro") == true)
end
function open(readonly, exportname, is_tls)
  return { name = exportname, tls = is_tls }
end
function get_size(h) return size end
function export_description(h)
  local tags = table.concat(nbdkit.param("tag"), ",")
  return h.name .. "|" .. nbdkit.param("mode") .. "|" ..
         tostring(nbdkit.param("ro")) .. "|" .. nbdkit.param("count") ..
         "|" .. tags .. "|" .. table.concat(seen, " ")
end
function list_exports(readonly, is_tls)
  return { "one", { name = "two", description = "the second" } }
end
function default_export(readonly, is_tls) return "one" end
function can_write(h) return true end
function can_flush(h) return true end
function can_trim(h) return true end
function can_zero(h) return true end
function can_fua(h) return nbdkit.FUA_NATIVE end
function can_multi_conn(h) return true end
function can_extents(h) return true end
function can_cache(h) return nbdkit.CACHE_EMULATE end
function block_size(h, client_requested)
  return { minimum = 1, preferred = 4096, maximum = 1048576 }
end
local function byte(o) return disk[o] or "\0" end
function pread(h, count, offset, flags)
  if offset == 65536 then
    -- Described piecewise: a hole, then lent data.
    nbdkit.read_hole(offset, count // 2)
    nbdkit.read_data(offset + count // 2, string.rep("L", count - count // 2))
    return
  end
  if offset == 131072 then
    error(nbdkit.errno("ENOSPC", "no space for reading"))
  end
  if offset == 131072 + 512 then
    error({ errno = "EINVAL" })
  end
  if offset == 131072 + 1024 then
    local t = nil
    return t.field    -- a bug: EIO, with the traceback logged
  end
  if offset == 131072 + 1536 then
    nbdkit.set_error(nbdkit.EPERM)
    error("plain error after set_error")
  end
  local out = {}
  for i = 0, count - 1 do out[#out + 1] = byte(offset + i) end
  return table.concat(out)
end
function pwrite(h, buf, offset, flags)
  assert(type(buf) == "string")
  if flags & nbdkit.FLAG_FUA ~= 0 then disk.fua = (disk.fua or 0) + 1 end
  for i = 1, #buf do disk[offset + i - 1] = buf:sub(i, i) end
end
function zero(h, count, offset, flags)
  for i = 0, count - 1 do disk[offset + i] = nil end
end
function trim(h, count, offset, flags) zero(h, count, offset, flags) end
function flush(h, flags) disk.flushed = true end
function extents(h, count, offset, flags)
  return { { offset, 4096, 0 },
           { offset = offset + 4096, length = count,
             type = nbdkit.EXTENT_HOLE | nbdkit.EXTENT_ZERO } }
end
''')

uri = t.start("lua", script, "size=1M", "ro=yes", "count=0x10", "tag=x",
              "tag=y")
h = t.connect(uri.replace(":///?", ":///two?"), full_info=True)

# Parameters: converted values, defaults applied, lists kept.
desc = h.get_export_description()
parts = desc.split("|")
assert parts[:5] == ["two", "a", "true", "16", "x,y"], desc
for want in ["size=1048576:integernumber", "ro=true:nilboolean",
             "count=16:integernumber", "tag=x:nilstring", "mode=a:nilstring"]:
    assert want in parts[5], (want, parts[5])

assert h.get_size() == 1048576
assert h.can_flush() and h.can_trim() and h.can_zero() and h.can_fua()
assert h.can_multi_conn() and h.can_cache()
assert not h.is_read_only()
assert h.get_block_size(nbd.SIZE_PREFERRED) == 4096
assert h.get_block_size(nbd.SIZE_MAXIMUM) == 1048576

# Data: strings in and out.
h.pwrite(b"hello world", 1000, nbd.CMD_FLAG_FUA)
assert h.pread(11, 1000) == b"hello world"
h.zero(5, 1000)
assert h.pread(11, 1000) == b"\0" * 5 + b" world"
h.trim(6, 1005)
assert h.pread(11, 1000) == bytes(11)
h.flush()

# A read described with read_hole and read_data (lent: 32 KiB).
got = h.pread(65536, 65536)
assert got == bytes(32768) + b"L" * 32768

# Errors: the errno given, else EIO.
nbdtest.expect_error(lambda: h.pread(512, 131072), errno.ENOSPC, "ENOSPC")
nbdtest.expect_error(lambda: h.pread(512, 131072 + 512), errno.EINVAL,
                     "table errno")
nbdtest.expect_error(lambda: h.pread(512, 131072 + 1024), errno.EIO, "bug")
nbdtest.expect_error(lambda: h.pread(512, 131072 + 1536), errno.EPERM,
                     "set_error")
# The connection survives errors.
assert h.pread(4, 1000) == bytes(4)

# Extents from a table.
ext = nbdtest.check_extents(h, 0, 65536)
assert ext[0] == (0, 4096, 0), ext
assert ext[1][2] == 3, ext

# Exports: listed from the table; the default one is "one".
h2 = nbd.NBD()
h2.set_opt_mode(True)
h2.connect_uri(uri)
names = []
h2.opt_list(lambda name, desc: names.append((name, desc)))
assert ("one", "") in names and ("two", "the second") in names, names
h2.opt_abort()
h3 = t.connect(uri, full_info=True)
assert h3.get_export_description().startswith("one|"), \
    h3.get_export_description()
print("PASS")
