import { SELECT, scrapeScripts } from './scripts.ts';

/**
 * The Lua scripts of the WebRTC swarms in Redis (rtc-swarms.ts; docs/redis.md "WebTorrent" has
 * the key layout). As with the TCP/UDP scripts (scripts.ts): KEYS[1] is the bucket's WebRTC swarm
 * index, which routes the call on Cluster, ARGV[1] the bucket's key base "<prefix>:{<bucket>}:",
 * and every key a script touches carries the bucket's hash tag; each script starts with a Redis 7
 * shebang, so a full Redis refuses an announce whole and the removals still run (allow-oom).
 *
 * Keys of swarm <h> (20 raw bytes) in bucket base B:
 *   B w:<h>:s   ZSET  seeders: member peer id (20 bytes), score last-seen (seconds)
 *   B w:<h>:l   ZSET  leechers
 *   B w:<h>:m   HASH  peer id → flag byte ('1' = completion counted) + owner (12 bytes: the instance
 *                     id, 8 bytes, and the socket's number on that instance, 4 bytes big-endian);
 *                     'd' → completions
 *   B wi        ZSET  the bucket's WebRTC swarms: member <h>, score the oldest peer's last-seen
 *   B wn        HASH  the bucket's statistics: t (swarms), s (seeders), l (leechers)
 *   B wo:<i>    SET   the peers instance <i> (8 bytes) holds in the bucket: <h> .. peer id
 * The counts a client reads are ZCARDs; the statistics and the owner sets change only in the
 * script that changes the member, and only when that change happened.
 */

const PRELUDE = `
local idx = KEYS[1]
local base = ARGV[1]
local stats = base .. 'wn'
local function swarm(h)
  local sk = base .. 'w:' .. h .. ':'
  return sk .. 's', sk .. 'l', sk .. 'm'
end
-- Records the swarm's oldest last-seen in the index, or frees the swarm once it has no peer.
local function settle(h, s, l, m)
  local a = redis.call('ZRANGE', s, 0, 0, 'WITHSCORES')
  local b = redis.call('ZRANGE', l, 0, 0, 'WITHSCORES')
  local oldest = a[2] and tonumber(a[2])
  if b[2] and (oldest == nil or tonumber(b[2]) < oldest) then oldest = tonumber(b[2]) end
  if oldest == nil then
    redis.call('DEL', m)
    if redis.call('ZREM', idx, h) == 1 then redis.call('HINCRBY', stats, 't', -1) end
  elseif redis.call('ZADD', idx, oldest, h) == 1 then
    redis.call('HINCRBY', stats, 't', 1)
  end
end
-- Removes peer pid (record rec, or nil) from swarm h; 1 if it was in it.
local function drop(h, s, l, m, pid, rec)
  local gone = 0
  if redis.call('ZREM', s, pid) == 1 then
    redis.call('HINCRBY', stats, 's', -1)
    gone = 1
  elseif redis.call('ZREM', l, pid) == 1 then
    redis.call('HINCRBY', stats, 'l', -1)
    gone = 1
  end
  redis.call('HDEL', m, pid)
  if rec then redis.call('SREM', base .. 'wo:' .. string.sub(rec, 2, 9), h .. pid) end
  return gone
end
-- Appends swarm h's complete, incomplete and downloaded to out.
local function counts(h, out)
  local s, l, m = swarm(h)
  out[#out + 1] = redis.call('ZCARD', s)
  out[#out + 1] = redis.call('ZCARD', l)
  out[#out + 1] = tonumber(redis.call('HGET', m, 'd') or '0')
end
`;

/**
 * Announce of peer pid in swarm h, from the socket named by owner; picks its offers' targets
 * before applying it (never itself; a seeder's go to leechers only).
 * ARGV: base, h, pid, owner (12 bytes), seeder ('1'|'0'), event (0-3), offers to place, now, r
 * (a uniform [0,1) draw). Returns {-1} when pid belongs to another socket; otherwise
 * {complete, incomplete (both without the requester), targets (per target: its peer id and
 * owner, 32 bytes, concatenated), 1 if the peer is new}.
 */
export const RTC_ANNOUNCE = `#!lua
${PRELUDE}
${SELECT}
local h, pid, owner = ARGV[2], ARGV[3], ARGV[4]
local seeder = ARGV[5] == '1'
local event = tonumber(ARGV[6])
local want = tonumber(ARGV[7])
local now = tonumber(ARGV[8])
local s, l, m = swarm(h)
local rec = redis.call('HGET', m, pid)
-- A peer id belongs to the socket that announced it first, while that socket is open.
if rec and string.sub(rec, 2) ~= owner then return {-1} end
local inS = redis.call('ZSCORE', s, pid) ~= false
local inL = (not inS) and redis.call('ZSCORE', l, pid) ~= false
local cs, cl = redis.call('ZCARD', s), redis.call('ZCARD', l)
local complete = cs - (inS and 1 or 0)
local incomplete = cl - (inL and 1 or 0)
if event == 3 then
  if rec then
    drop(h, s, l, m, pid, rec)
    settle(h, s, l, m)
  end
  return {complete, incomplete, '', 0}
end

local out = {}
if want > 0 then
  if seeder then
    pick(out, l, cl, want, inL, pid)
  else
    local ks, kl = split(want, complete, incomplete, tonumber(ARGV[9]))
    pick(out, s, cs, ks, inS, pid)
    pick(out, l, cl, kl, inL, pid)
  end
end
local targets = ''
if #out > 0 then
  local recs = redis.call('HMGET', m, unpack(out))
  local t = {}
  for i = 1, #out do
    local r = recs[i]
    if r and #r == 13 then t[#t + 1] = out[i] .. string.sub(r, 2) end
  end
  targets = table.concat(t)
end

local key, other, field, ofield = l, s, 'l', 's'
if seeder then key, other, field, ofield = s, l, 's', 'l' end
if redis.call('ZADD', key, now, pid) == 1 then redis.call('HINCRBY', stats, field, 1) end
if (seeder and inL) or ((not seeder) and inS) then
  if redis.call('ZREM', other, pid) == 1 then redis.call('HINCRBY', stats, ofield, -1) end
end
local counted = rec and string.sub(rec, 1, 1) == '1'
if event == 1 and not counted then
  counted = true
  redis.call('HINCRBY', m, 'd', 1)
end
local value = (counted and '1' or '0') .. owner
if rec ~= value then redis.call('HSET', m, pid, value) end
if not rec then redis.call('SADD', base .. 'wo:' .. string.sub(owner, 1, 8), h .. pid) end
settle(h, s, l, m)
return {complete, incomplete, targets, rec and 0 or 1}
`;

/**
 * A socket closed: its peers leave. ARGV: base, owner (12 bytes), then per peer its info hash and
 * peer id (40 bytes). A peer is removed only while that socket owns it. Returns how many left.
 */
export const RTC_LEAVE = `#!lua flags=allow-oom
${PRELUDE}
local owner = ARGV[2]
local n = 0
for a = 3, #ARGV do
  local h, pid = string.sub(ARGV[a], 1, 20), string.sub(ARGV[a], 21, 40)
  local s, l, m = swarm(h)
  local rec = redis.call('HGET', m, pid)
  if rec and string.sub(rec, 2) == owner then
    n = n + drop(h, s, l, m, pid, rec)
    settle(h, s, l, m)
  end
end
return n
`;

/**
 * An instance is gone (stopped, or its heartbeat stale): its peers in this bucket leave, at most
 * `budget` per call. ARGV: base, instance id (8 bytes), budget. Returns {removed, 1 if more left}.
 */
export const RTC_DROP_INSTANCE = `#!lua flags=allow-oom
${PRELUDE}
local inst = ARGV[2]
local set = base .. 'wo:' .. inst
local n = 0
for _, x in ipairs(redis.call('SPOP', set, tonumber(ARGV[3]))) do
  local h, pid = string.sub(x, 1, 20), string.sub(x, 21, 40)
  local s, l, m = swarm(h)
  local rec = redis.call('HGET', m, pid)
  if rec and string.sub(rec, 2, 9) == inst then
    n = n + drop(h, s, l, m, pid, nil)
    settle(h, s, l, m)
  end
end
return {n, redis.call('EXISTS', set)}
`;

/** Scrape and full-scrape page of WebRTC swarms (see `scrapeScripts`). */
export const { scrape: RTC_SCRAPE, page: RTC_SCRAPE_PAGE } = scrapeScripts(PRELUDE);

/**
 * Expiry of one bucket: ARGV base, cutoff (peers last seen at or before it go), budget. Visits only
 * swarms whose oldest peer has expired (at most 100). Safe when every instance sweeps at once.
 * Returns {removed, 1 if there may be more to do}.
 */
export const RTC_SWEEP = `#!lua flags=allow-oom
${PRELUDE}
local cutoff = tonumber(ARGV[2])
local budget = tonumber(ARGV[3])
local removed = 0
local swarms = redis.call('ZRANGEBYSCORE', idx, '-inf', cutoff, 'LIMIT', 0, 100)
for _, h in ipairs(swarms) do
  if removed >= budget then break end
  local s, l, m = swarm(h)
  for _, key in ipairs({s, l}) do
    for _, pid in ipairs(redis.call('ZRANGEBYSCORE', key, '-inf', cutoff, 'LIMIT', 0, budget - removed)) do
      removed = removed + drop(h, s, l, m, pid, redis.call('HGET', m, pid))
    end
  end
  settle(h, s, l, m)
end
return {removed, (removed >= budget or #swarms == 100) and 1 or 0}
`;

/**
 * Heartbeat: KEYS[1] the live-instances set (`<prefix>:rtc:instances`), ARGV this instance's id,
 * the silence (ms) after which an instance is dead. Records the beat and returns up to 10
 * instances whose last beat is that old. Timed by this Redis's clock (TIME), the one clock every
 * instance shares: with each host's own, an instance whose clock ran behind the others' by more
 * than the silence was taken for dead at every beat, and its peers removed.
 * allow-oom: a full Redis must not make every instance look dead.
 */
export const RTC_BEAT = `#!lua flags=allow-oom
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZADD', KEYS[1], string.format('%.0f', now), ARGV[1])
return redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', string.format('%.0f', now - tonumber(ARGV[2])), 'LIMIT', 0, 10)
`;
