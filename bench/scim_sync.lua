-- An identity provider's initial sync, as Microsoft Entra ID sends it: for each person, a lookup
-- (GET /Users?filter=userName eq "<address>") and then the creation (POST /Users).
-- wrk -s bench/scim_sync.lua -H "Authorization: Bearer scim_..." -H "Content-Type: application/scim+json" \
--     <base>/scim/v2/Users -- <tag> <domain>
-- Each wrk thread numbers its own people; done() prints "created N failed M" (failed: neither 200 nor 201).

local threads = {}
local counter = 0

function setup(thread)
  counter = counter + 1
  thread:set("tid", counter)
  table.insert(threads, thread)
end

function init(args)
  sent = 0
  created = 0
  failed = 0
  prefix = args[1] .. "-t" .. tid
  domain = args[2]
end

function request()
  sent = sent + 1
  local person = math.floor((sent + 1) / 2)
  local address = prefix .. "-" .. person .. "@" .. domain
  if sent % 2 == 1 then
    return wrk.format("GET", wrk.path .. "?filter=userName%20eq%20%22" .. address .. "%22")
  end
  local name = prefix .. "-" .. person
  local body = '{"schemas":["urn:ietf:params:scim:schemas:core:2.0:User",'
    .. '"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"],'
    .. '"externalId":"' .. name .. '","userName":"' .. address .. '","active":true,'
    .. '"displayName":"' .. name .. '","emails":[{"primary":true,"type":"work","value":"' .. address .. '"}],'
    .. '"name":{"formatted":"' .. name .. '","familyName":"Bench","givenName":"' .. name .. '"},'
    .. '"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User":{"department":"Bench"}}'
  return wrk.format("POST", wrk.path, nil, body)
end

function response(status, headers, body)
  if status == 201 then
    created = created + 1
  elseif status ~= 200 then
    failed = failed + 1
  end
end

function done(summary, latency, requests)
  local c, f = 0, 0
  for _, thread in ipairs(threads) do
    c = c + thread:get("created")
    f = f + thread:get("failed")
  end
  io.write(string.format("created %d failed %d\n", c, f))
end
