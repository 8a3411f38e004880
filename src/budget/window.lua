-- fieldguard: the bulk-read budgets' sliding windows in Redis or Valkey,
-- counted and checked in one atomic step (src/budget/redis_store.rs).
--
-- The same window as the memory store (src/budget/window.rs): 12 slots per
-- window; a count stays until its slot is 12 slots old. One key per budget
-- and principal (or role), a hash:
--   w      = the slot length in milliseconds (a changed window empties it)
--   <slot> = what was counted in that slot (absolute slot number: time / w)
-- Time is the store's own clock (TIME), so replicas with skewed clocks
-- agree on every window.
--
-- KEYS: the counters; they share one hash tag (one Cluster slot).
-- ARGV[1]: the operation
--   check  - read only: what each counter holds (the proxy answers its
--            precheck from its own charges; this is for operators)
--   charge - if no counter flagged refusing would exceed its limit with its
--            amount, add every amount; else add nothing
--   add    - add every amount unconditionally (the local fallback's counts,
--            written back when the store returns)
--   refund - take back amounts added by `charge` at the slots given (a
--            Cluster charge refused by a later slot group)
-- then per key, four values: slot_ms, limit, amount, refusing (1|0); for
-- refund the fourth is the slot the amount was added at.
--
-- Returns {refused, then per key: used, frees_in_ms, slot}: `used` before
-- this call, `frees_in_ms` until the oldest count leaves (0: empty), `slot`
-- the slot amounts were added at.

local SLOTS = 12
local op = ARGV[1]
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)

local function arg(i, j)
  return tonumber(ARGV[1 + (i - 1) * 4 + j])
end

if op == 'refund' then
  for i = 1, #KEYS do
    local amount, slot = arg(i, 3), arg(i, 4)
    if amount > 0 and redis.call('HEXISTS', KEYS[i], slot) == 1 then
      if redis.call('HINCRBY', KEYS[i], slot, -amount) <= 0 then
        redis.call('HDEL', KEYS[i], slot)
      end
    end
  end
  return {0}
end

local used, frees, cur = {}, {}, {}
for i = 1, #KEYS do
  local slot_ms = arg(i, 1)
  local c = math.floor(now / slot_ms)
  cur[i] = c
  local u, oldest = 0, nil
  local h = redis.call('HGETALL', KEYS[i])
  if #h > 0 then
    local w = nil
    for j = 1, #h, 2 do
      if h[j] == 'w' then w = tonumber(h[j + 1]) end
    end
    if w ~= slot_ms then
      redis.call('DEL', KEYS[i])
    else
      local stale = {}
      for j = 1, #h, 2 do
        if h[j] ~= 'w' then
          local s = tonumber(h[j])
          if s == nil or s <= c - SLOTS then
            stale[#stale + 1] = h[j]
          else
            u = u + (tonumber(h[j + 1]) or 0)
            if oldest == nil or s < oldest then oldest = s end
          end
        end
      end
      if #stale > 0 then redis.call('HDEL', KEYS[i], unpack(stale)) end
    end
  end
  used[i] = u
  if oldest == nil then
    frees[i] = 0
  else
    frees[i] = math.max((oldest + SLOTS) * slot_ms - now, 1)
  end
end

local refused = 0
if op == 'charge' then
  for i = 1, #KEYS do
    if arg(i, 4) == 1 and used[i] + arg(i, 3) > arg(i, 2) then refused = 1 end
  end
end
if (op == 'charge' and refused == 0) or op == 'add' then
  for i = 1, #KEYS do
    local slot_ms, amount = arg(i, 1), arg(i, 3)
    if amount > 0 then
      redis.call('HINCRBY', KEYS[i], cur[i], amount)
      redis.call('HSET', KEYS[i], 'w', slot_ms)
      redis.call('PEXPIRE', KEYS[i], slot_ms * (SLOTS + 1))
    end
  end
end

local out = {refused}
for i = 1, #KEYS do
  out[#out + 1] = used[i]
  out[#out + 1] = frees[i]
  out[#out + 1] = cur[i]
end
return out
