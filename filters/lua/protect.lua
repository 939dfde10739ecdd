-- protect.lua: make ranges of the disk read-only.
--
--   nbdkit --filter=./protect.lua PLUGIN ... protect=0-1023
--
-- A write, zero or trim that would change a byte of a protected range
-- fails with EPERM; one that leaves the bytes as they are (writing the
-- same data, zeroing zeroes) succeeds, so e.g. a whole-disk copy of the
-- same image still works.  Everything else passes through.
--
-- Parameters:
--   protect=START-END   a protected range, bytes START to END inclusive,
--                       in decimal, hex (0x1bd) or octal (0755), or as
--                       sizes (1M); START- runs to the end of the disk,
--                       -END starts at 0.  Repeatable; without any,
--                       nothing is protected.
--   protect=~START-END  protect everything except START to END.

params = {
  { name = "protect", type = "list",
    doc = "START-END: bytes START to END (inclusive) are read-only" },
}

local ranges = {}   -- { first, last } inclusive; last may be math.huge

-- An offset as nbdkit reads it: decimal, 0x hex or 0 octal; or a size
-- with a suffix (1M).
local function offset_of(text, value)
  local n
  if text:match("^0[xX]%x+$") and #text <= 18 then
    n = tonumber(text:sub(3), 16)
  elseif text:match("^0[0-7]+$") and #text <= 22 then
    n = tonumber(text, 8)
  elseif text:match("^%d+$") then
    n = math.tointeger(tonumber(text))
  else
    n = nbdkit.parse_size(text)
  end
  if n == nil or n < 0 then
    error(nbdkit.errno("EINVAL", "protect=" .. value .. ": '" .. text ..
                       "' is not an offset"))
  end
  return n
end

function config(key, value)
  local inv, a, b = value:match("^%s*(~?)%s*([^-]*)%s*%-%s*([^-]*)%s*$")
  if not a then
    error(nbdkit.errno("EINVAL", "protect: expected START-END or " ..
                       "~START-END, not '" .. value .. "'"))
  end
  a, b = a:match("^(.-)%s*$"), b:match("^(.-)%s*$")
  local first = a == "" and 0 or offset_of(a, value)
  local last = b == "" and math.maxinteger or offset_of(b, value)
  if last < first then
    error(nbdkit.errno("EINVAL", "protect: " .. value .. ": END < START"))
  end
  if inv == "~" then
    if first > 0 then ranges[#ranges + 1] = { 0, first - 1 } end
    if last < math.maxinteger then
      ranges[#ranges + 1] = { last + 1, math.maxinteger }
    end
  else
    ranges[#ranges + 1] = { first, last }
  end
end

function thread_model() return "parallel" end

-- Call fn(first, last) for each protected part of [offset, offset+count).
local function each_overlap(count, offset, fn)
  if count == 0 then return end
  local last = offset + count - 1
  for _, r in ipairs(ranges) do
    local f, l = math.max(r[1], offset), math.min(r[2], last)
    if f <= l then fn(f, l) end
  end
end

local CHUNK = 1024 * 1024

-- Does the disk hold exactly WANT (nil: zeroes) over [first, last]?
local function holds(next, first, last, want)
  local pos = first
  while pos <= last do
    local n = math.min(CHUNK, last - pos + 1)
    local have = next:pread(n, pos)
    local expect = want and want:sub(pos - first + 1, pos - first + n)
                   or string.rep("\0", n)
    if have ~= expect then return false end
    pos = pos + n
  end
  return true
end

local function refuse(what, first, last)
  error(nbdkit.errno("EPERM", string.format(
    "%s would change protected bytes %d-%d", what, first, last)))
end

function pwrite(next, h, buf, offset, flags)
  each_overlap(#buf, offset, function(f, l)
    local part = buf:sub(f - offset + 1, l - offset + 1)
    if not holds(next, f, l, part) then refuse("write", f, l) end
  end)
  next:pwrite(buf, offset, flags)
end

function zero(next, h, count, offset, flags)
  each_overlap(count, offset, function(f, l)
    if not holds(next, f, l, nil) then refuse("zero", f, l) end
  end)
  next:zero(count, offset, flags)
end

function trim(next, h, count, offset, flags)
  each_overlap(count, offset, function(f, l)
    if not holds(next, f, l, nil) then refuse("trim", f, l) end
  end)
  next:trim(count, offset, flags)
end
