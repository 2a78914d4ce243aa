-- Included by scripts that record what they did: audit(entry, k) writes the entry prepared by
-- gantry.state.audit.prepare ('' records nothing). KEYS[k..k+3]: audit:seq, audit,
-- audit:project:{p}, audit:entries (state.audit.keys_for gives them).
local function audit(raw, k)
  if raw == nil or raw == '' then return end
  local e = cjson.decode(raw)
  local id = string.format('%016d', redis.call('INCR', KEYS[k])) .. e['nonce']
  e['auditID'] = id
  e['nonce'] = nil
  local member = e['at'] .. ':' .. id
  redis.call('HSET', KEYS[k + 3], id, cjson.encode(e))
  redis.call('ZADD', KEYS[k + 1], 0, member)
  if e['project'] ~= '' then redis.call('ZADD', KEYS[k + 2], 0, member) end
end
