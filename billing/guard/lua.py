"""The guard counters' Redis scripts (see billing.guard.counters for what they keep).

Amounts are four base-10^12 limbs of 1e-30 units; snapshots are PostgreSQL's
`xmin:xmax:xip,...`. Key names: `g:s:<counter>` (value and snapshot), `g:m:` (a seed in
progress), `g:p:` (increments waiting for it), `g:shapes` (the counter shapes in use),
`g:rz:`/`g:rt:` (a counter's reservations and their total), `g:rl:` (a reservation's
counters), `g:q:` (reservations waiting for their event).
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

# ARGV: xact, then counts and groups: cells (tenant, feature id, prompt id, model,
# hour YYYYMMDDHH, amount), direct counters (name, amount), releases (queue, count).
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
  local t, f, p, m, h = ARGV[i], ARGV[i + 1], ARGV[i + 2], ARGV[i + 3], ARGV[i + 4]
  local delta = parse(ARGV[i + 5])
  i = i + 6
  for _, shape in ipairs(shapes) do
    local period = string.sub(shape, 6)
    local value = h
    if period == "day" then value = string.sub(h, 1, 8)
    elseif period == "month" then value = string.sub(h, 1, 6) end
    local dims = {t, f, p, m}
    local parts = {shape, value}
    for d = 1, 4 do
      if string.sub(shape, d, d) == "-" then parts[d + 2] = "" else parts[d + 2] = dims[d] end
    end
    apply(table.concat(parts, ":"), x, delta)
  end
end
local direct = tonumber(ARGV[i]); i = i + 1
for _ = 1, direct do
  apply(ARGV[i], x, parse(ARGV[i + 1]))
  i = i + 2
end
local releases = tonumber(ARGV[i]); i = i + 1
local now = now_ms()
for _ = 1, releases do
  local queue, count = ARGV[i], tonumber(ARGV[i + 1])
  i = i + 2
  while count > 0 do
    local entry = redis.call("LPOP", queue)
    if not entry then break end
    local id, n, expires = string.match(entry, "^([^:]+):(%d+):(%d+)$")
    if tonumber(expires) > now then
      local member = id .. ":" .. n
      for _, name in ipairs(redis.call("LRANGE", "g:rl:" .. id, 0, -1)) do
        if redis.call("ZREM", "g:rz:" .. name, member) == 1 then
          redis.call("DECRBY", "g:rt:" .. name, n)
        end
      end
      redis.call("DEL", "g:rl:" .. id)
      count = count - 1
    end
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

# ARGV: name, token, amount, snapshot, ttl ms. 1: installed (or present); 0: the marker
# is gone (Redis was flushed or the seed took too long), seed again.
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
redis.call("HSET", key, "v", fmt(v), "snap", snap)
redis.call("PEXPIRE", key, tonumber(ARGV[5]))
redis.call("DEL", "g:p:" .. name, "g:m:" .. name)
return 1
"""
)

# ARGV: reservation id, nanos, ttl ms, queue if allowed, queue if downgraded, count,
# then per counter: name, limit, strict (1: over the limit, 0: at it), blocking (1/0).
# Returns {"seed", i...} for counters to seed first, else {"ok", reserved (0/1), then
# per counter: hit (0/1), spend, reserved nanos}.
CHECK = (
    LUA_COMMON
    + """
local id, n, ttl = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])
local count = tonumber(ARGV[6])
local missing = {"seed"}
local values = {}
for c = 1, count do
  local v = redis.call("HGET", "g:s:" .. ARGV[3 + 4 * c], "v")
  if v then values[c] = v else missing[#missing + 1] = c end
end
if #missing > 1 then return missing end
local now = now_ms()
local out = {"ok", 0}
local blocked, downgraded = false, false
for c = 1, count do
  local base = 3 + 4 * c
  local name = ARGV[base]
  local zset, total = "g:rz:" .. name, "g:rt:" .. name
  local expired = redis.call("ZRANGEBYSCORE", zset, "-inf", now)
  for _, member in ipairs(expired) do
    redis.call("DECRBY", total, tonumber(string.match(member, ":(%d+)$")))
  end
  if #expired > 0 then redis.call("ZREMRANGEBYSCORE", zset, "-inf", now) end
  local spend = parse(values[c])
  local reserved = tonumber(redis.call("GET", total) or "0")
  local diff = cmp(add(spend, nanos(reserved), 1), parse(ARGV[base + 1]))
  local hit = diff > 0 or (diff == 0 and ARGV[base + 2] == "0")
  if hit then
    if ARGV[base + 3] == "1" then blocked = true else downgraded = true end
  end
  out[#out + 1] = hit and 1 or 0
  out[#out + 1] = values[c]
  out[#out + 1] = reserved
end
if not blocked and n > 0 then
  local expires = now + ttl
  local member = id .. ":" .. n
  local names = {}
  for c = 1, count do
    local name = ARGV[3 + 4 * c]
    names[#names + 1] = name
    redis.call("ZADD", "g:rz:" .. name, expires, member)
    redis.call("INCRBY", "g:rt:" .. name, n)
    redis.call("PEXPIRE", "g:rz:" .. name, 2 * ttl)
    redis.call("PEXPIRE", "g:rt:" .. name, 2 * ttl)
  end
  redis.call("RPUSH", "g:rl:" .. id, unpack(names))
  redis.call("PEXPIRE", "g:rl:" .. id, 2 * ttl)
  local queue = ARGV[4]
  if downgraded then queue = ARGV[5] end
  redis.call("RPUSH", queue, id .. ":" .. n .. ":" .. expires)
  redis.call("PEXPIRE", queue, 2 * ttl)
  out[2] = 1
end
return out
"""
)
