-- tls-fallback.lua: show clients without TLS a notice instead of the disk.
--
--   nbdkit --tls=on --tls-certificates=DIR \
--          --filter=./tls-fallback.lua PLUGIN ... tlsreadme="Use TLS"
--
-- A client that did not negotiate TLS sees one small read-only export
-- (the default one) whose data is the notice padded with zeroes to 512
-- bytes; the plugin is not even opened for it.  TLS clients see the
-- plugin unchanged.  Only useful with --tls=on (with --tls=require
-- there are no plain clients).
--
-- Parameters:
--   tlsreadme=TEXT          the notice (default: "This NBD server
--                           requires TLS authentication before it will
--                           serve useful data.\n")
--   tls-fallback-data=TEXT  the same as tlsreadme

params = {
  { name = "tlsreadme", doc = "the text plain clients see" },
  { name = "tls-fallback-data", doc = "same as tlsreadme" },
}

local readme = "This NBD server requires TLS authentication before it" ..
               " will serve useful data.\n"

function config(key, value)
  readme = value
end

function config_complete()
  local size = math.max(512, (#readme + 511) // 512 * 512)
  readme = readme .. string.rep("\0", size - #readme)
end

function thread_model() return "parallel" end

function list_exports(backend, readonly, is_tls)
  if is_tls then return backend:list_exports(readonly, is_tls) end
  return { "" }
end

function default_export(backend, readonly, is_tls)
  if is_tls then return backend:default_export(readonly, is_tls) end
  return ""
end

function open(ctx, readonly, exportname, is_tls)
  if nbdkit.is_tls() then return {} end
  ctx:open_none()
  return { fallback = true }
end

function get_size(next, h)
  if h.fallback then return #readme end
  return next:get_size()
end

function export_description(next, h)
  -- No description for the notice (an empty one means none).
  if h.fallback then return "" end
  return next:export_description()
end

function block_size(next, h, client_requested)
  if h.fallback then return nil end
  return next:block_size()
end

-- Capabilities: a plain client may only read.
local plain = {
  can_write = false, can_flush = false, is_rotational = false,
  can_trim = false, can_zero = nbdkit.ZERO_NONE, can_fast_zero = false,
  can_fua = nbdkit.FUA_NONE, can_multi_conn = true,
  can_extents = nbdkit.EXTENTS_NONE, can_cache = nbdkit.CACHE_NONE,
}
for name, answer in pairs(plain) do
  _G[name] = function(next, h)
    if h.fallback then return answer end
    return next[name](next)
  end
end

function pread(next, h, count, offset, flags)
  if h.fallback then return readme:sub(offset + 1, offset + count) end
  return next:pread(count, offset, flags)
end
