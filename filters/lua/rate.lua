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
--   rate-file=FILE         change rate= while running: FILE holds the
--                          new rate (e.g. "10M"), read again when it
--                          changes; while FILE is missing the last rate
--                          (or rate=) stays
--   connection-rate-file=FILE  the same for connection-rate=
--   burstiness=SECS        the size of the buckets in seconds of traffic
--                          (default 2.0)

params = {
  { name = "rate", type = "size", doc = "server bandwidth, bits/s" },
  { name = "connection-rate", type = "size",
    doc = "per connection bandwidth, bits/s" },
  { name = "read-rate", type = "size", doc = "server read bandwidth, bits/s" },
  { name = "write-rate", type = "size",
    doc = "server write bandwidth, bits/s" },
  { name = "rate-file",
    doc = "file holding the server bandwidth, read again when it changes" },
  { name = "connection-rate-file",
    doc = "file holding the per connection bandwidth" },
  { name = "burstiness", default = "2.0",
    doc = "bucket size in seconds of traffic (default 2.0)" },
}

local rates = {}
local burstiness = 2.0
local buckets = {}     -- name -> bucket, for the server-wide ones
local files = {}       -- "rate" / "connection-rate" -> file name
local CHECK_EVERY = 0.1 -- seconds between looks at the rate files
local last_check = -math.huge

function config(key, value)
  if key == "rate-file" or key == "connection-rate-file" then
    -- It may not exist yet; the server may change directory later.
    files[key:sub(1, -6)] = nbdkit.absolute_path(value)
  elseif key == "burstiness" then
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

local function set_rate(b, rate)
  b.rate, b.cap = rate, rate * burstiness
  b.tokens = math.min(b.tokens, b.cap)
end

-- Read the rate files (at most every CHECK_EVERY seconds); a missing or
-- unreadable file keeps the current rate.
local function check_files()
  local now = nbdkit.clock()
  if now - last_check < CHECK_EVERY then return end
  last_check = now
  for key, name in pairs(files) do
    local f = io.open(name, "r")
    if f then
      local text = (f:read("a") or ""):match("^%s*(.-)%s*$")
      f:close()
      local ok, v = pcall(nbdkit.parse_size, text)
      if ok and v and v > 0 and v ~= rates[key] then
        nbdkit.debug(string.format("%s: %s is now %d bits/s", name, key, v))
        rates[key] = v
        if key == "rate" then
          if buckets.rate then set_rate(buckets.rate, v)
          else buckets.rate = new_bucket(v) end
        end
      end
    end
  end
end

function config_complete()
  check_files()
  for _, k in ipairs({ "rate", "read-rate", "write-rate" }) do
    if rates[k] and not buckets[k] then buckets[k] = new_bucket(rates[k]) end
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
  if next(files) then
    check_files()
    local cr = rates["connection-rate"]
    if cr then
      if not h.bucket then h.bucket = new_bucket(cr)
      elseif h.bucket.rate ~= cr then set_rate(h.bucket, cr) end
    end
  end
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
