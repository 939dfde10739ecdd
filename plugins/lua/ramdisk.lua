-- ramdisk.lua: a RAM disk written in Lua.
--
--   nbdkit ramdisk.lua size=1G
--
-- The disk starts as zeroes and keeps what clients write until the
-- server exits; every client sees the same disk.  Data is held in
-- 64 KiB blocks created on first write, so an untouched disk costs
-- nothing and reads of untouched blocks are holes.
--
-- Parameters:
--   size=SIZE   the size of the disk (required), e.g. 1G, 512M

params = {
  { name = "size", type = "size", required = true,
    doc = "size of the disk, e.g. 1G" },
}

local BLOCK = 65536
local size
local blocks = {}          -- block number -> string of BLOCK bytes
local zero_block = string.rep("\0", BLOCK)

function config(key, value)
  if key == "size" then size = value end
end

-- The blocks live in this Lua state's globals, which every connection
-- must share: not "parallel", which gives each thread a state of its
-- own.  Requests from different clients may still come from several
-- threads, one at a time in this state.
function thread_model()
  return "serialize_requests"
end

function open(readonly, exportname, is_tls)
  return {}
end

function get_size(h)
  return size
end

function can_multi_conn(h) return true end
function can_trim(h) return true end
function can_zero(h) return true end
function can_flush(h) return true end
function can_fua(h) return nbdkit.FUA_NATIVE end
function can_extents(h) return true end

-- Visit the blocks of [offset, offset+count): fn(block, start, len, pos)
-- where start is the offset in the block and pos the offset in the
-- request.
local function each_block(count, offset, fn)
  local pos = 0
  while pos < count do
    local b = (offset + pos) // BLOCK
    local start = (offset + pos) % BLOCK
    local len = math.min(BLOCK - start, count - pos)
    fn(b, start, len, pos)
    pos = pos + len
  end
end

function pread(h, count, offset, flags)
  each_block(count, offset, function(b, start, len, pos)
    local data = blocks[b]
    if data == nil then
      nbdkit.read_hole(offset + pos, len)
    else
      nbdkit.read_data(offset + pos, data:sub(start + 1, start + len))
    end
  end)
end

function pwrite(h, buf, offset, flags)
  each_block(#buf, offset, function(b, start, len, pos)
    local data = blocks[b] or zero_block
    blocks[b] = data:sub(1, start) .. buf:sub(pos + 1, pos + len) ..
                data:sub(start + len + 1)
  end)
end

function zero(h, count, offset, flags)
  each_block(count, offset, function(b, start, len, pos)
    local data = blocks[b]
    if data ~= nil then
      if len == BLOCK then
        blocks[b] = nil
      else
        blocks[b] = data:sub(1, start) .. string.rep("\0", len) ..
                    data:sub(start + len + 1)
      end
    end
  end)
end

trim = zero

function flush(h, flags) end

function extents(h, count, offset, flags)
  local list = {}
  each_block(count, offset, function(b, start, len, pos)
    local t = blocks[b] and 0 or (nbdkit.EXTENT_HOLE | nbdkit.EXTENT_ZERO)
    local last = list[#list]
    if last and last.type == t then
      last.length = last.length + len
    else
      list[#list + 1] = { offset = offset + pos, length = len, type = t }
    end
  end)
  return list
end
