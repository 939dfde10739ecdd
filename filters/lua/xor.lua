-- XOR every byte read and written with a key: a pattern to copy.
--
--   nbdkit --filter=./xor.lua PLUGIN ... xorkey=N
--
-- xorkey=N (0 to 255, decimal or 0x..; default 0, which changes
-- nothing) is XORed into every byte written to the layer below and
-- every byte read from it, so the data below is scrambled and reads
-- give back what was written.  The same filter exists in Python
-- (filters/python/xor.py) and OCaml (filters/ocaml/xor.ml).  A zeroed
-- range below would read back as the key, so zero requests become
-- writes of the key.
params = {
  { name = "xorkey", type = "int", default = "0",
    doc = "the byte XORed into all data, 0 to 255" },
}

local key
local map = {}

function config_complete()
  key = nbdkit.param("xorkey")
  if key < 0 or key > 255 then
    error(nbdkit.errno("EINVAL", "xorkey=" .. key ..
                       ": expected a byte, 0 to 255"))
  end
  for b = 0, 255 do map[string.char(b)] = string.char(b ~ key) end
end

function thread_model() return "parallel" end

local function xor(s)
  if key == 0 then return s end
  return (s:gsub(".", map))
end

function pread(next, h, count, offset, flags)
  return xor(next:pread(count, offset, flags))
end

function pwrite(next, h, buf, offset, flags)
  next:pwrite(xor(buf), offset, flags)
end

function zero(next, h, count, offset, flags)
  if key == 0 then return next:zero(count, offset, flags) end
  if flags & nbdkit.FLAG_FAST_ZERO ~= 0 then
    error(nbdkit.errno("ENOTSUP", "xor: zeroes are written"))
  end
  local chunk = string.rep(string.char(key), math.min(count, 1 << 20))
  while count > 0 do
    local n = math.min(count, #chunk)
    next:pwrite(n == #chunk and chunk or chunk:sub(1, n), offset,
                flags & nbdkit.FLAG_FUA)
    offset = offset + n
    count = count - n
  end
end

function extents(next, h, count, offset, flags)
  -- Holes and zeroes below read as the key here: all data.
  if key == 0 then return next:extents(count, offset, flags) end
  return { { offset, count, 0 } }
end
