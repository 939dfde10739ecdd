-- retry.lua: retry requests that fail in the layer below.
--
--   nbdkit --filter=./retry.lua PLUGIN ... retries=5 retry-delay=1
--
-- A request that fails below is tried again, up to `retries` more
-- times, waiting `retry-delay` before the first retry; with
-- retry-exponential the wait doubles each time.  Only when every try
-- failed does the client see the error (the last one).  A fast zero
-- refused with ENOTSUP is an answer, not a failure, and is not retried;
-- nor is anything once the server is shutting down (ESHUTDOWN).
-- Unlike nbdkit's retry filter, the connection below is not reopened.
--
-- Parameters:
--   retries=N              how many retries (default 5)
--   retry-delay=DELAY      wait before the first retry: seconds or
--                          e.g. "100ms" (default 2)
--   retry-exponential=BOOL double the wait each time (default true)

params = {
  { name = "retries", type = "int", default = 5,
    doc = "how many times to retry (default 5)" },
  { name = "retry-delay", default = "2",
    doc = "wait before the first retry, e.g. 2 or 100ms (default 2)" },
  { name = "retry-exponential", type = "bool", default = true,
    doc = "double the wait at each retry (default true)" },
}

local retries, delay, exponential

function config(key, value)
  if key == "retries" then
    if value < 0 then
      error(nbdkit.errno("EINVAL", "retries must not be negative"))
    end
    retries = value
  elseif key == "retry-delay" then
    delay = nbdkit.parse_delay(key, value)
  else
    exponential = value
  end
end

function thread_model() return "parallel" end

-- Call next[method](next, ...) until it succeeds or the retries are
-- used up; return its results or raise its last error.
local function with_retries(what, fast_zero, next, method, ...)
  local wait = delay
  for try = 0, retries do
    local ok, a = pcall(next[method], next, ...)
    if ok then return a end
    local e = type(a) == "table" and a.name
    if try == retries or e == "ESHUTDOWN"
       or (fast_zero and e == "ENOTSUP") then
      error(a, 0)
    end
    nbdkit.debug(string.format("retry %d: %s failed with %s, waiting %gs",
                               try + 1, what, tostring(e or a), wait))
    nbdkit.sleep(wait)
    if exponential then wait = wait * 2 end
  end
end

function pread(next, h, count, offset, flags)
  return with_retries("pread", false, next, "pread", count, offset, flags)
end

function pwrite(next, h, buf, offset, flags)
  with_retries("pwrite", false, next, "pwrite", buf, offset, flags)
end

function trim(next, h, count, offset, flags)
  with_retries("trim", false, next, "trim", count, offset, flags)
end

function zero(next, h, count, offset, flags)
  with_retries("zero", flags & nbdkit.FLAG_FAST_ZERO ~= 0, next, "zero",
               count, offset, flags)
end

function extents(next, h, count, offset, flags)
  return with_retries("extents", false, next, "extents", count, offset,
                      flags)
end

function cache(next, h, count, offset, flags)
  with_retries("cache", false, next, "cache", count, offset, flags)
end

function flush(next, h, flags)
  with_retries("flush", false, next, "flush", flags)
end
