-- exportname.lua: control the export names clients see and may use.
--
--   nbdkit --filter=./exportname.lua PLUGIN ... default-export=disk1 \
--          exportname-list=explicit exportname=disk1 exportname=disk2 \
--          exportname-strict=true
--
-- Parameters:
--   default-export=NAME      the name a client asking for the default
--                            export ("") gets (default: the plugin's)
--   exportname-list=MODE     what listing the exports answers:
--                            keep (the plugin's list, the default),
--                            error (listing fails), empty (no exports),
--                            defaultonly (just the default export),
--                            explicit (the exportname= names)
--   exportname=NAME          an export name (repeatable), for
--                            exportname-list=explicit and strictness
--   exportname-strict=BOOL   true: a client may only open the names
--                            given with exportname= (and the default
--                            export only if exportname= (empty) is
--                            given) (default false)
--   exportdesc=DESC          the exports' descriptions, when listed and
--                            when opened: keep (default, the plugin's),
--                            none, fixed:TEXT, or script:SCRIPT (the
--                            output of the shell SCRIPT, run with $name
--                            set to the export's name)

params = {
  { name = "default-export", doc = "name of the default export" },
  { name = "exportname-list", type = "enum", default = "keep",
    choices = { "keep", "error", "empty", "defaultonly", "explicit" },
    doc = "what listing exports answers" },
  { name = "exportname", type = "list", doc = "an export name (repeatable)" },
  { name = "exportname-strict", type = "bool", default = false,
    doc = "refuse names not given with exportname=" },
  { name = "exportdesc", default = "keep",
    doc = "keep, none, fixed:TEXT or script:SCRIPT" },
}

local default_name, list_mode, strict, desc_mode, desc_text
local names = {}

function config(key, value)
  if key == "default-export" then default_name = value
  elseif key == "exportname-list" then list_mode = value
  elseif key == "exportname" then names[#names + 1] = value
  elseif key == "exportname-strict" then strict = value
  elseif key == "exportdesc" then
    if value == "keep" or value == "none" then
      desc_mode = value
    elseif value:match("^fixed:") then
      desc_mode, desc_text = "fixed", value:sub(7)
    elseif value:match("^script:") then
      desc_mode, desc_text = "script", value:sub(8)
    else
      error(nbdkit.errno("EINVAL", "exportdesc: expected keep, none," ..
                         " fixed:TEXT or script:SCRIPT, not '" .. value .. "'"))
    end
  end
end

function thread_model() return "parallel" end

local function listed(name)
  for _, n in ipairs(names) do
    if n == name then return true end
  end
  return false
end

-- Strict: a client may ask for the default export ("") only if
-- exportname= (empty) permits it, as in nbdkit.
function default_export(backend, readonly, is_tls)
  if strict and not listed("") then
    error(nbdkit.errno("ENOENT", "the default export is not one of the " ..
                       "permitted names (add exportname= to permit it)"))
  end
  return default_name or backend:default_export(readonly, is_tls)
end

-- The description exportdesc= gives export NAME, or KEEP.
local function describe(name, keep)
  if desc_mode == "none" then return nil end
  if desc_mode == "fixed" then return desc_text end
  if desc_mode == "script" then
    local quoted = "'" .. name:gsub("'", "'\\''") .. "'"
    local p = io.popen("name=" .. quoted .. "\n" .. desc_text, "r")
    if not p then
      error(nbdkit.errno("EIO", "exportdesc: cannot run the script"))
    end
    local out = p:read("a")
    p:close()
    return (out:gsub("\n+$", ""))
  end
  return keep
end

function list_exports(backend, readonly, is_tls)
  if list_mode == "keep" then
    local list = backend:list_exports(readonly, is_tls)
    if desc_mode ~= "keep" then
      for _, e in ipairs(list) do
        e.description = describe(e.name, nil)
      end
    end
    return list
  elseif list_mode == "error" then
    error(nbdkit.errno("EPERM", "listing exports is not allowed"))
  elseif list_mode == "empty" then
    return {}
  elseif list_mode == "defaultonly" then
    nbdkit.use_default_export()
  else
    return names
  end
end

local function allowed(name)
  return name == default_name or listed(name)
end

-- The server has already turned "" into the default export's name.
function open(ctx, readonly, exportname, is_tls)
  if strict and not allowed(exportname) then
    error(nbdkit.errno("ENOENT", "export '" .. exportname ..
                       "' is not one of the permitted names"))
  end
end

function export_description(next, h)
  if desc_mode == "keep" then return next:export_description() end
  -- nil would mean the layer below's: no description is an empty one.
  return describe(nbdkit.export_name(), nil) or ""
end
