-- delay.lua: delay requests, to simulate a slow or remote disk.
--
--   nbdkit --filter=./delay.lua PLUGIN ... delay-read=100ms delay-write=1
--
-- Each request of a kind waits the given time before it is passed on.
-- A delay is seconds ("2", "1.5") or a number with s, ms, us or ns
-- ("100ms").  Requests of other connections are not held up meanwhile.
--
-- Parameters (all optional, default no delay):
--   delay-read=DELAY     (or rdelay=) reads
--   delay-write=DELAY    (or wdelay=) writes
--   delay-zero=DELAY     write-zeroes requests
--   delay-trim=DELAY     trims
--   delay-extents=DELAY  block status
--   delay-cache=DELAY    cache requests
--   delay-flush=DELAY    flushes
--   delay-open=DELAY     opening a connection
--   delay-close=DELAY    closing a connection
--   delay-fast-zero=BOOL (default true) false: a fast zero request fails
--                        at once with ENOTSUP instead of being delayed

local kinds = { "read", "write", "zero", "trim", "extents", "cache", "flush",
                "open", "close" }
local aliases = { rdelay = "read", wdelay = "write" }

params = {}
for _, k in ipairs(kinds) do
  params[#params + 1] = { name = "delay-" .. k, doc = "delay " .. k .. "s" }
end
params[#params + 1] = { name = "rdelay", doc = "same as delay-read" }
params[#params + 1] = { name = "wdelay", doc = "same as delay-write" }
params[#params + 1] = { name = "delay-fast-zero", type = "bool",
                        default = true,
                        doc = "false: fast zeroes fail with ENOTSUP at once" }

local delay = {}        -- kind -> seconds
local delay_fast_zero = true

function config(key, value)
  if key == "delay-fast-zero" then
    delay_fast_zero = value
    return
  end
  local kind = aliases[key] or key:match("^delay%-(.*)$")
  delay[kind] = nbdkit.parse_delay(key, value)
end

-- The script keeps no state a wait could disturb.
function thread_model() return "parallel" end

local function wait(kind, whole)
  local d = delay[kind]
  if d and d > 0 then nbdkit.sleep(d, whole) end
end

function open(ctx, readonly, exportname, is_tls)
  wait("open")
end

-- The client has sent its disconnect (or gone) by now, which would cut
-- an ordinary sleep short; this one delays the server's close of the
-- socket, so a client that waits for it sees the delay, even when the
-- server is shutting down.
function close(h)
  wait("close", true)
end

function pread(next, h, count, offset, flags)
  wait("read")
  return next:pread(count, offset, flags)
end

function pwrite(next, h, buf, offset, flags)
  wait("write")
  next:pwrite(buf, offset, flags)
end

function zero(next, h, count, offset, flags)
  if flags & nbdkit.FLAG_FAST_ZERO ~= 0 and not delay_fast_zero
     and (delay.zero or 0) > 0 then
    error(nbdkit.errno("ENOTSUP", "fast zero refused: it would be delayed"))
  end
  wait("zero")
  next:zero(count, offset, flags)
end

function trim(next, h, count, offset, flags)
  wait("trim")
  next:trim(count, offset, flags)
end

function extents(next, h, count, offset, flags)
  wait("extents")
  return next:extents(count, offset, flags)
end

function cache(next, h, count, offset, flags)
  wait("cache")
  next:cache(count, offset, flags)
end

function flush(next, h, flags)
  wait("flush")
  next:flush(flags)
end
