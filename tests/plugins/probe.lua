-- The probe plugin of tests/integration/hosts-defaults.py in Lua: the
-- callbacks named in $PROBE, over a RAM disk.
local have = {}
for name in (os.getenv("PROBE") or ""):gmatch("[^,]+") do have[name] = true end
local disk = {}

function get_size(h) return 1048576 end
function pread(h, count, offset, flags)
  local out = {}
  for i = offset, offset + count - 1 do out[#out + 1] = disk[i] or "\0" end
  return table.concat(out)
end
if have.pwrite then
  function pwrite(h, buf, offset, flags)
    for i = 1, #buf do disk[offset + i - 1] = buf:sub(i, i) end
  end
end
if have.flush then function flush(h, flags) end end
if have.trim then function trim(h, count, offset, flags) end end
if have.zero then
  function zero(h, count, offset, flags)
    for i = offset, offset + count - 1 do disk[i] = nil end
  end
end
if have.cache then function cache(h, count, offset, flags) end end
if have.extents then
  function extents(h, count, offset, flags)
    return { { offset, count, 0 } }
  end
end
