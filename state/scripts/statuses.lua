-- may(FROM, current, to): whether a transition table (rendered from gantry.statuses) lets a
-- status `current` become `to`.
local function may(from, current, to)
  local row = from[to]
  return row ~= nil and current ~= nil and current ~= false and row[current] == true
end
