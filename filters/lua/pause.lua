-- pause.lua: pause and resume requests through a control socket.
--
--   nbdkit --filter=./pause.lua PLUGIN ... pause-control=/tmp/ctl.sock
--
-- Send 'p' to the Unix socket to pause: requests that arrive from then
-- on wait, and 'P' comes back once the requests already running have
-- finished (the layer below is then idle, e.g. for a snapshot).  Send
-- 'r' to resume: 'R' comes back and the waiting requests go on.  Any
-- other command is answered 'X'; newlines and spaces are ignored, so
-- `echo p | nc -U /tmp/ctl.sock` works.  Paused requests poll every
-- 10 ms.
--
-- Parameters:
--   pause-control=SOCKET   the Unix socket to listen on (required)

params = {
  { name = "pause-control", required = true,
    doc = "Unix socket accepting p (pause) and r (resume)" },
}

local control_path
local paused = false
local inflight = 0

function config(key, value)
  -- Absolute: the server may change directory when it daemonizes.
  control_path = nbdkit.absolute_path(value)
end

function thread_model() return "parallel" end

local function control(data)
  local out = {}
  for c in data:gmatch(".") do
    if c == "p" then
      paused = true
      while inflight > 0 do nbdkit.sleep(0.01) end
      out[#out + 1] = "P"
    elseif c == "r" then
      paused = false
      out[#out + 1] = "R"
    elseif not c:match("%s") then
      out[#out + 1] = "X"
    end
  end
  return table.concat(out)
end

-- After daemonizing, so the listening thread is in the server process.
function after_fork(backend)
  nbdkit.listen_unix(control_path, control)
end

-- Run fn once not paused, counted as in flight meanwhile.  No other
-- request runs between the check and the count (nothing here waits).
local function gate(fn, ...)
  while paused do nbdkit.sleep(0.01) end
  inflight = inflight + 1
  local ok, r = pcall(fn, ...)
  inflight = inflight - 1
  if not ok then error(r, 0) end
  return r
end

function pread(next, h, count, offset, flags)
  return gate(next.pread, next, count, offset, flags)
end

function pwrite(next, h, buf, offset, flags)
  gate(next.pwrite, next, buf, offset, flags)
end

function zero(next, h, count, offset, flags)
  gate(next.zero, next, count, offset, flags)
end

function trim(next, h, count, offset, flags)
  gate(next.trim, next, count, offset, flags)
end

function flush(next, h, flags)
  gate(next.flush, next, flags)
end

function extents(next, h, count, offset, flags)
  return gate(next.extents, next, count, offset, flags)
end

function cache(next, h, count, offset, flags)
  gate(next.cache, next, count, offset, flags)
end
