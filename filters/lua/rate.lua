-- rate.lua: limit the bandwidth of the server.
--
--   nbdkit --filter=./rate.lua PLUGIN ... rate=10M
--
-- Rates are in bits per second, as with nbdkit's rate filter
-- ("rate=10M" is 10 megabits, 1.25 megabytes, per second).  Reads and
-- writes take their size from a token bucket holding `burstiness`
-- seconds of traffic; a request the bucket cannot pay for waits.
-- Waiting requests hold up no other connection.
--
-- Parameters (all optional):
--   rate=BITS              the whole server, reads and writes together
--   connection-rate=BITS   each connection, reads and writes together
--   read-rate=BITS         the whole server's reads
--   write-rate=BITS        the whole server's writes
--   burstiness=SECS        the size of the buckets in seconds of traffic
--                          (default 2.0)

params = {
  { name = "rate", type = "size", doc = "server bandwidth, bits/s" },
  { name = "connection-rate", type = "size",
    doc = "per connection bandwidth, bits/s" },
  { name = "read-rate", type = "size", doc = "server read bandwidth, bits/s" },
  { name = "write-rate", type = "size",
    doc = "server write bandwidth, bits/s" },
  { name = "burstiness", default = "2.0",
    doc = "bucket size in seconds of traffic (default 2.0)" },
}

local rates = {}
local burstiness = 2.0
local buckets = {}     -- name -> bucket, for the server-wide ones

function config(key, value)
  if key == "burstiness" then
    burstiness = tonumber(value)
    if not burstiness or burstiness <= 0 then
      error(nbdkit.errno("EINVAL", "burstiness: expected seconds > 0"))
    end
  elseif value <= 0 then
    error(nbdkit.errno("EINVAL", key .. " must be > 0"))
  else
    rates[key] = value
  end
end

local function new_bucket(rate)
  local cap = rate * burstiness
  return { rate = rate, cap = cap, tokens = cap, t = nbdkit.clock() }
end

function config_complete()
  for _, k in ipairs({ "rate", "read-rate", "write-rate" }) do
    if rates[k] then buckets[k] = new_bucket(rates[k]) end
  end
end

function thread_model() return "parallel" end

-- Take BITS from bucket B (it may go into debt); the seconds to wait.
local function take(b, bits)
  local now = nbdkit.clock()
  b.tokens = math.min(b.cap, b.tokens + (now - b.t) * b.rate)
  b.t = now
  b.tokens = b.tokens - bits
  if b.tokens >= 0 then return 0 end
  return -b.tokens / b.rate
end

-- Pay for COUNT bytes from every bucket that applies, then wait for
-- the slowest.
local function pay(h, kind, count)
  local bits, wait = count * 8, 0
  for _, b in pairs({ buckets.rate, buckets[kind], h.bucket }) do
    wait = math.max(wait, take(b, bits))
  end
  if wait > 0 then nbdkit.sleep(wait) end
end

function open(ctx, readonly, exportname, is_tls)
  local h = {}
  if rates["connection-rate"] then
    h.bucket = new_bucket(rates["connection-rate"])
  end
  return h
end

function pread(next, h, count, offset, flags)
  pay(h, "read-rate", count)
  return next:pread(count, offset, flags)
end

function pwrite(next, h, buf, offset, flags)
  pay(h, "write-rate", #buf)
  next:pwrite(buf, offset, flags)
end
