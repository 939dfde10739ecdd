-- error.lua: inject errors, to test how clients cope with a failing disk.
--
--   nbdkit --filter=./error.lua PLUGIN ... error=ENOSPC error-rate=10%
--
-- Each request fails with the chosen errno at the chosen rate, instead
-- of being passed on.  With an error file, errors are injected only
-- while that file exists, so a test can switch them on and off.
--
-- Parameters:
--   error=ERRNO         the errno: EIO (default), EPERM, ENOMEM, EINVAL,
--                       ENOSPC, ESHUTDOWN, or any other errno name
--   error-rate=RATE     how often: "10%", "0.1" or "1:10" (default 0,
--                       or 100% when an error file is given)
--   error-file=FILE     inject only while FILE exists
--   error-KIND=, error-KIND-rate=, error-KIND-file=
--                       the same for one kind of request only, KIND one
--                       of pread, pwrite, trim, zero, extents, cache,
--                       flush (overriding the general settings)

local kinds = { "pread", "pwrite", "trim", "zero", "extents", "cache",
                "flush" }

params = {
  { name = "error", doc = "errno to inject (default EIO)" },
  { name = "error-rate", doc = "rate of errors, e.g. 10% (default 0)" },
  { name = "error-file", doc = "inject only while this file exists" },
}
for _, k in ipairs(kinds) do
  params[#params + 1] = { name = "error-" .. k, doc = "errno for " .. k }
  params[#params + 1] = { name = "error-" .. k .. "-rate",
                          doc = "rate for " .. k }
  params[#params + 1] = { name = "error-" .. k .. "-file",
                          doc = "error file for " .. k }
end

-- settings[""] is the general one, settings[kind] a kind's own.
local settings = { [""] = {} }
for _, k in ipairs(kinds) do settings[k] = {} end

local function check_errno(key, name)
  if not nbdkit[name] or type(nbdkit[name]) ~= "number"
     or not name:match("^E%u+$") then
    error(nbdkit.errno("EINVAL", key .. ": unknown errno '" .. name .. "'"))
  end
  return name
end

function config(key, value)
  local kind, what = key:match("^error%-(%l+)%-(%l+)$")
  if not kind then
    kind = key:match("^error%-(%l+)$")
    what = "errno"
    if kind == "rate" or kind == "file" then kind, what = "", kind end
  end
  if key == "error" then kind, what = "", "errno" end
  local s = settings[kind]
  if what == "errno" then
    s.errno = check_errno(key, value)
  elseif what == "rate" then
    s.rate = nbdkit.parse_probability(key, value)
  else
    -- Relative to where the server was started, not to "/" where a
    -- server in the background runs.
    s.file = nbdkit.absolute_path(value)
  end
end

function thread_model() return "parallel" end

-- Fail the request (raise) if an error is due for KIND.
local function maybe_fail(kind)
  local s, g = settings[kind], settings[""]
  local file = s.file or g.file
  local rate = s.rate or g.rate or (file and 1 or 0)
  if rate <= 0 then return end
  if file then
    local f = io.open(file, "r")
    if not f then return end
    f:close()
  end
  if rate >= 1 or math.random() < rate then
    local e = s.errno or g.errno or "EIO"
    error(nbdkit.errno(e, "injecting " .. e .. " error into " .. kind))
  end
end

function pread(next, h, count, offset, flags)
  maybe_fail("pread")
  return next:pread(count, offset, flags)
end

function pwrite(next, h, buf, offset, flags)
  maybe_fail("pwrite")
  next:pwrite(buf, offset, flags)
end

function trim(next, h, count, offset, flags)
  maybe_fail("trim")
  next:trim(count, offset, flags)
end

function zero(next, h, count, offset, flags)
  maybe_fail("zero")
  next:zero(count, offset, flags)
end

function extents(next, h, count, offset, flags)
  maybe_fail("extents")
  return next:extents(count, offset, flags)
end

function cache(next, h, count, offset, flags)
  maybe_fail("cache")
  next:cache(count, offset, flags)
end

function flush(next, h, flags)
  maybe_fail("flush")
  next:flush(flags)
end
