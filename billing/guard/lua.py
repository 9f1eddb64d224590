"""The guard counters' Redis scripts (see billing.guard.counters for what they keep).

Amounts are four base-10^12 limbs of 1e-30 units; snapshots are PostgreSQL's
`xmin:xmax:xip,...`. Key names: `g:s:<counter>` (value and snapshot), `g:m:` (a seed in
progress), `g:p:` (increments waiting for it), `g:shapes` (the counter shapes in use),
`g:rz:`/`g:rt:` (a counter's reservations and their total), `g:pr:` (reservations
released while the counter was being seeded), `g:rr:` (calls let through in a rate
limit's window).
"""

from __future__ import annotations

SEED_MARKER_MS = 30_000

LUA_COMMON = """
local B = 1000000000000
local function parse(s)
  local t = {0, 0, 0, 0}
  if not s then return t end
  local i = 1
  for part in string.gmatch(s, "[^,]+") do t[i] = tonumber(part); i = i + 1 end
  return t
end
local function fmt(l)
  return string.format("%.0f,%.0f,%.0f,%.0f", l[1], l[2], l[3], l[4])
end
local function add(a, b, sign)
  local r = {}
  for i = 1, 4 do r[i] = a[i] + sign * b[i] end
  for i = 1, 3 do
    local c = math.floor(r[i] / B)
    r[i] = r[i] - c * B
    r[i + 1] = r[i + 1] + c
  end
  return r
end
local function cmp(a, b)
  for i = 4, 1, -1 do
    if a[i] < b[i] then return -1 elseif a[i] > b[i] then return 1 end
  end
  return 0
end
local function nanos(n)
  -- n billionths = n * 10^21 units: 10^9 * (n mod 1000) in limb 2, n div 1000 in limb 3
  local low = n % 1000
  return add({0, low * 1000000000, (n - low) / 1000, 0}, {0, 0, 0, 0}, 1)
end
local function visible(x, snap)
  local xmin, xmax, xip = string.match(snap, "^(%d+):(%d+):(.*)$")
  x = tonumber(x)
  if x < tonumber(xmin) then return true end
  if x >= tonumber(xmax) then return false end
  for v in string.gmatch(xip, "%d+") do
    if tonumber(v) == x then return false end
  end
  return true
end
local function now_ms()
  local t = redis.call("TIME")
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
"""

# ARGV: xact, then counts and groups: cells (tenant, feature id, prompt id, key id,
# model, end user, minute YYYYMMDDHHMM, cost, tokens), direct counters (name, amount),
# releases (counter, reservation member).
APPLY = (
    LUA_COMMON
    + """
local function apply(name, x, delta)
  local key = "g:s:" .. name
  local snap = redis.call("HGET", key, "snap")
  if snap then
    if not visible(x, snap) then
      redis.call("HSET", key, "v", fmt(add(parse(redis.call("HGET", key, "v")), delta, 1)))
    end
  elseif redis.call("EXISTS", "g:m:" .. name) == 1 then
    local pending = "g:p:" .. name
    redis.call("HSET", pending, x, fmt(add(parse(redis.call("HGET", pending, x)), delta, 1)))
    redis.call("PEXPIRE", pending, 120000)
  end
end
local x = ARGV[1]
local i = 2
local shapes = redis.call("SMEMBERS", "g:shapes")
local cells = tonumber(ARGV[i]); i = i + 1
for _ = 1, cells do
  local dims = {ARGV[i], ARGV[i + 1], ARGV[i + 2], ARGV[i + 3], ARGV[i + 4], ARGV[i + 5]}
  local minute = ARGV[i + 6]
  local cost, tokens = parse(ARGV[i + 7]), parse(ARGV[i + 8])
  i = i + 9
  for _, shape in ipairs(shapes) do
    local period = string.sub(shape, 9)
    local value = minute
    if period == "hour" then value = string.sub(minute, 1, 10)
    elseif period == "day" then value = string.sub(minute, 1, 8)
    elseif period == "month" then value = string.sub(minute, 1, 6) end
    local parts = {}
    for d = 1, 6 do
      if string.sub(shape, d + 1, d + 1) == "-" then parts[d] = "" else parts[d] = dims[d] end
    end
    local name = shape .. ":" .. value .. ":" .. parts[1] .. ":" .. parts[2] .. ":"
      .. parts[3] .. ":" .. parts[4] .. ":" .. parts[5] .. string.char(31) .. parts[6]
    if string.sub(shape, 1, 1) == "n" then apply(name, x, tokens) else apply(name, x, cost) end
  end
end
local direct = tonumber(ARGV[i]); i = i + 1
for _ = 1, direct do
  apply(ARGV[i], x, parse(ARGV[i + 1]))
  i = i + 2
end
local releases = tonumber(ARGV[i]); i = i + 1
for _ = 1, releases do
  local name, member = ARGV[i], ARGV[i + 1]
  i = i + 2
  if redis.call("ZREM", "g:rz:" .. name, member) == 1 then
    redis.call("DECRBY", "g:rt:" .. name, tonumber(string.match(member, ":(%d+)$")))
  elseif redis.call("EXISTS", "g:m:" .. name) == 1 then
    -- A seed in progress may have read the reservation before this release.
    redis.call("SADD", "g:pr:" .. name, member)
    redis.call("PEXPIRE", "g:pr:" .. name, 120000)
  end
end
return 1
"""
)

# ARGV: name, shape ('' for none), token. Returns the token to install with, or ''
# when the counter exists.
SEED_BEGIN = """
local name, shape, token = ARGV[1], ARGV[2], ARGV[3]
if redis.call("EXISTS", "g:s:" .. name) == 1 then return "" end
if shape ~= "" then redis.call("SADD", "g:shapes", shape) end
if redis.call("SET", "g:m:" .. name, token, "NX", "PX", SEED_MARKER_MS) then return token end
return redis.call("GET", "g:m:" .. name) or ""
""".replace("SEED_MARKER_MS", str(SEED_MARKER_MS))

# ARGV: name, token, amount, snapshot, ttl ms, reservations ("id:nanos:expires_ms,...",
# as the seed's snapshot saw them), reservation key ttl ms. 1: installed (or present);
# 0: the marker is gone (Redis was flushed or the seed took too long), seed again.
SEED_INSTALL = (
    LUA_COMMON
    + """
local name, token, snap = ARGV[1], ARGV[2], ARGV[4]
local key = "g:s:" .. name
if redis.call("EXISTS", key) == 1 then return 1 end
if redis.call("GET", "g:m:" .. name) ~= token then return 0 end
local v = parse(ARGV[3])
local pending = redis.call("HGETALL", "g:p:" .. name)
for j = 1, #pending, 2 do
  if not visible(pending[j], snap) then v = add(v, parse(pending[j + 1]), 1) end
end
local now = now_ms()
local zset, total, released = "g:rz:" .. name, "g:rt:" .. name, "g:pr:" .. name
for entry in string.gmatch(ARGV[6], "[^,]+") do
  local id, n, expires = string.match(entry, "^([^:]+):(%d+):(%d+)$")
  local member = id .. ":" .. n
  if tonumber(expires) > now and redis.call("SISMEMBER", released, member) == 0 then
    if redis.call("ZADD", zset, tonumber(expires), member) == 1 then
      redis.call("INCRBY", total, tonumber(n))
    end
    redis.call("PEXPIRE", zset, tonumber(ARGV[7]))
    redis.call("PEXPIRE", total, tonumber(ARGV[7]))
  end
end
redis.call("HSET", key, "v", fmt(v), "snap", snap)
redis.call("PEXPIRE", key, tonumber(ARGV[5]))
redis.call("DEL", "g:p:" .. name, "g:m:" .. name, released)
return 1
"""
)

# ARGV: reservation id, nanos, expires (unix ms), reservation key ttl ms, count, then per
# limit: kind ("s": spend counter, reserved on; "v": a counter checked as it is, such
# as tokens; "r": request counter), name, limit (limbs, or a count), strict (1: over
# the limit, 0: at it), blocking (1/0), window ms (for "r").
# Returns {"seed", i...} for counters to seed first, else {"ok", reserved (0/1), then
# per limit: hit (0/1), value (limbs, or the count), reserved nanos}.
CHECK = (
    LUA_COMMON
    + """
local id, n, expires, ttl = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
local count = tonumber(ARGV[5])
local missing = {"seed"}
local values = {}
for c = 1, count do
  local base = 6 * c
  if ARGV[base] ~= "r" then
    local v = redis.call("HGET", "g:s:" .. ARGV[base + 1], "v")
    if v then values[c] = v else missing[#missing + 1] = c end
  else
    values[c] = redis.call("GET", ARGV[base + 1]) or "0"
  end
end
if #missing > 1 then return missing end
local now = now_ms()
local out = {"ok", 0}
local blocked, spends = false, 0
local member = id .. ":" .. n
for c = 1, count do
  local base = 6 * c
  local name = ARGV[base + 1]
  local hit, reserved = false, 0
  if ARGV[base] == "s" then
    spends = spends + 1
    local zset, total = "g:rz:" .. name, "g:rt:" .. name
    local expired = redis.call("ZRANGEBYSCORE", zset, "-inf", now)
    for _, member in ipairs(expired) do
      redis.call("DECRBY", total, tonumber(string.match(member, ":(%d+)$")))
    end
    if #expired > 0 then redis.call("ZREMRANGEBYSCORE", zset, "-inf", now) end
    reserved = tonumber(redis.call("GET", total) or "0")
    -- A seed may have installed this call's own reservation from the row recorded
    -- before the check: a call is judged on the others' reservations.
    if redis.call("ZSCORE", zset, member) then reserved = reserved - n end
    local diff = cmp(add(parse(values[c]), nanos(reserved), 1), parse(ARGV[base + 2]))
    hit = diff > 0 or (diff == 0 and ARGV[base + 3] == "0")
  elseif ARGV[base] == "v" then
    local diff = cmp(parse(values[c]), parse(ARGV[base + 2]))
    hit = diff > 0 or (diff == 0 and ARGV[base + 3] == "0")
  else
    hit = tonumber(values[c]) >= tonumber(ARGV[base + 2])
  end
  if hit and ARGV[base + 4] == "1" then blocked = true end
  out[#out + 1] = hit and 1 or 0
  out[#out + 1] = values[c]
  out[#out + 1] = reserved
end
if blocked then
  -- Nothing is reserved for a refused call, not even what a seed installed for it.
  for c = 1, count do
    local name = ARGV[6 * c + 1]
    if ARGV[6 * c] == "s" then
      if redis.call("ZREM", "g:rz:" .. name, member) == 1 then
        redis.call("DECRBY", "g:rt:" .. name, n)
      elseif redis.call("EXISTS", "g:m:" .. name) == 1 then
        redis.call("SADD", "g:pr:" .. name, member)
        redis.call("PEXPIRE", "g:pr:" .. name, 120000)
      end
    end
  end
  return out
end
for c = 1, count do
  local base = 6 * c
  local name = ARGV[base + 1]
  if ARGV[base] == "r" then
    redis.call("INCR", name)
    redis.call("PEXPIRE", name, tonumber(ARGV[base + 5]))
  elseif ARGV[base] == "s" and n > 0 then
    -- A seed may have installed it already, from the row recorded before the check.
    if redis.call("ZADD", "g:rz:" .. name, expires, member) == 1 then
      redis.call("INCRBY", "g:rt:" .. name, n)
    end
    redis.call("PEXPIRE", "g:rz:" .. name, ttl)
    redis.call("PEXPIRE", "g:rt:" .. name, ttl)
  end
end
if n > 0 and spends > 0 then out[2] = 1 end
return out
"""
)
