-- Included by scripts whose status changes people hear of: emit(kind, id, project, status, from)
-- appends one event to the stream that is the script's last key (gantry.state.events reads it),
-- in the same step as the change, so none is lost and none is told of a change not made.
local function emit(kind, id, project, status, from)
  redis.call('XADD', KEYS[#KEYS], 'MAXLEN', '~', '100000', '*', 'kind', kind, 'id', id, 'project', project or '',
             'status', status, 'from', from or '')
end
