-- ip.lua: allow or refuse clients by their address.
--
--   nbdkit --filter=./ip.lua PLUGIN ... allow=127.0.0.1,::1 deny=all
--
-- Each client is checked before the handshake: if it matches a rule of
-- `allow` it is accepted; else if it matches a rule of `deny` it is
-- refused (the connection is closed); else it is accepted.
--
-- Parameters (each may be given several times, rules separated by
-- commas):
--   allow=RULES, deny=RULES   where a rule is one of:
--     all                 every client
--     allipv4, allipv6    every TCP client over IPv4 / IPv6
--     unix                every client on a Unix socket
--     A.B.C.D[/BITS]      an IPv4 address or network
--     IPV6[/BITS]         an IPv6 address or network ([IPV6] also works)
--     pid:N, uid:N, gid:N a client process, user or group (Unix sockets)

params = {
  { name = "allow", type = "list", doc = "rules of clients to accept" },
  { name = "deny", type = "list", doc = "rules of clients to refuse" },
}

local rules = { allow = {}, deny = {} }

-- An address as a list of bytes (4 for IPv4, 16 for IPv6), or nil.
local function ipv4_bytes(s)
  local a, b, c, d = s:match("^(%d+)%.(%d+)%.(%d+)%.(%d+)$")
  if not a then return nil end
  local r = { tonumber(a), tonumber(b), tonumber(c), tonumber(d) }
  for _, x in ipairs(r) do if x > 255 then return nil end end
  return r
end

local function ipv6_bytes(s)
  -- An IPv4 tail ("::ffff:1.2.3.4") becomes two groups.
  local head, v4 = s:match("^(.*:)(%d+%.%d+%.%d+%.%d+)$")
  if v4 then
    local b = ipv4_bytes(v4)
    if not b then return nil end
    s = head .. string.format("%x:%x", b[1] * 256 + b[2], b[3] * 256 + b[4])
  end
  local left, right = s:match("^(.-)::(.*)$")
  local groups = {}
  local function add(part, into)
    if part == "" then return true end
    for g in (part .. ":"):gmatch("([^:]*):") do
      if not g:match("^%x%x?%x?%x?$") then return false end
      into[#into + 1] = tonumber(g, 16)
    end
    return true
  end
  if left then
    local l, r = {}, {}
    if not add(left, l) or not add(right, r) or #l + #r > 7 then return nil end
    for _, g in ipairs(l) do groups[#groups + 1] = g end
    for _ = 1, 8 - #l - #r do groups[#groups + 1] = 0 end
    for _, g in ipairs(r) do groups[#groups + 1] = g end
  else
    if not add(s, groups) or #groups ~= 8 then return nil end
  end
  local bytes = {}
  for _, g in ipairs(groups) do
    bytes[#bytes + 1] = g // 256
    bytes[#bytes + 1] = g % 256
  end
  return bytes
end

-- Do the first BITS bits of byte lists A and B agree?
local function prefix_match(a, b, bits)
  if #a ~= #b then return false end
  for i = 1, #a do
    local n = math.min(8, math.max(0, bits - (i - 1) * 8))
    if n == 0 then break end
    local mask = (0xff << (8 - n)) & 0xff
    if a[i] & mask ~= b[i] & mask then return false end
  end
  return true
end

local function parse_rule(key, text)
  local r = text:lower()
  if r == "all" or r == "any" then return { kind = "all" } end
  if r == "allipv4" or r == "anyipv4" then return { kind = "ipv4" } end
  if r == "allipv6" or r == "anyipv6" then return { kind = "ipv6" } end
  if r == "unix" or r == "allunix" or r == "anyunix" then
    return { kind = "unix" }
  end
  local idk, idv = r:match("^(%a+):(%d+)$")
  if idk == "pid" or idk == "uid" or idk == "gid" then
    return { kind = idk, id = tonumber(idv) }
  end
  local addr, bits = r:match("^(.-)/(%d+)$")
  addr = addr or r
  addr = addr:match("^%[(.*)%]$") or addr
  local bytes = ipv4_bytes(addr) or ipv6_bytes(addr)
  if bytes then
    bits = tonumber(bits) or #bytes * 8
    if bits <= #bytes * 8 then
      return { kind = "net", bytes = bytes, bits = bits }
    end
  end
  error(nbdkit.errno("EINVAL", key .. ": cannot parse rule '" .. text ..
                     "' (expected all, allipv4, allipv6, unix, an address" ..
                     " or network, or pid:/uid:/gid:N)"))
end

function config(key, value)
  for text in value:gmatch("[^,%s]+") do
    table.insert(rules[key], parse_rule(key, text))
  end
end

function thread_model() return "parallel" end

-- An IPv4 client seen through an IPv6 socket ("::ffff:A.B.C.D").
local function unmapped(bytes)
  for i = 1, 10 do if bytes[i] ~= 0 then return nil end end
  if bytes[11] ~= 255 or bytes[12] ~= 255 then return nil end
  return { bytes[13], bytes[14], bytes[15], bytes[16] }
end

local function matches(rule, family, bytes)
  local k = rule.kind
  if k == "all" then return true end
  if k == "unix" then return family == "unix" end
  if k == "ipv4" then return family == "ipv4" end
  if k == "ipv6" then return family == "ipv6" end
  if k == "pid" or k == "uid" or k == "gid" then
    if family ~= "unix" then return false end
    local ok, id = pcall(nbdkit["peer_" .. k])
    return ok and id == rule.id
  end
  if not bytes then return false end
  if prefix_match(rule.bytes, bytes, rule.bits) then return true end
  local v4 = #bytes == 16 and unmapped(bytes)
  return v4 and prefix_match(rule.bytes, v4, rule.bits) or false
end

local function any_match(list, family, bytes)
  for _, rule in ipairs(list) do
    if matches(rule, family, bytes) then return true end
  end
  return false
end

function preconnect(backend, readonly)
  local family, address = nbdkit.peer_name()
  local bytes
  if family == "ipv4" then bytes = ipv4_bytes(address)
  elseif family == "ipv6" then bytes = ipv6_bytes(address) end
  if any_match(rules.allow, family, bytes) then return end
  if any_match(rules.deny, family, bytes) then
    local who = family == "unix" and "a Unix socket client" or address
    error(nbdkit.errno("EPERM", "client " .. who .. " refused by ip filter"))
  end
end
