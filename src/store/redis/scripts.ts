/**
 * The Lua scripts of the Redis swarm store (docs/redis.md has the key layout). Each is loaded
 * once and run by EVALSHA (ioredis `defineCommand`, which falls back to EVAL when a restarted
 * server has forgotten it; ANNOUNCE_BATCH by the store's own EVALSHA command with the same fallback,
 * redis-store.ts `#luaAnnounce`). Every call is one script on one bucket, whose keys all share one
 * hash tag, so it runs unchanged on Redis Cluster.
 *
 * KEYS[1] is always the bucket's swarm index: it routes the call on Cluster. The other keys a
 * script touches are derived from ARGV[1] (the bucket's key base, "<prefix>:{<bucket>}:") and
 * carry the same hash tag, so they live in the same slot, which Cluster accepts for a script.
 *
 * Out of memory (maxmemory with noeviction): each script starts with a shebang, so Redis decides
 * once, before it runs, whether it may (announces are refused whole when Redis is full; scrapes
 * declare no-writes; the sweep is allow-oom, so expiry frees memory when Redis is full). A script
 * without flags would be checked command by command and could stop half-way, after a member
 * change and before its counter change.
 *
 * Exactness: the counts a client reads are cardinalities of the peer sets (ZCARD), never counters.
 * The per-bucket statistics hash (`n`) is a counter, but each of its changes is made in the same
 * script, right after the member change that causes it and only when that change happened (the
 * return of ZADD or ZREM decides), so concurrent announces and sweeps from any number of
 * instances cannot make it drift.
 */

/**
 * Shared prelude: the four peer sets of a swarm and `settle`, which records the swarm's oldest
 * last-seen in the bucket index (what the sweep looks at) or, when the swarm has no peer left,
 * frees it (its meta hash, with the completion count, and its index entry).
 */
const PRELUDE = `
local idx = KEYS[1]
local base = ARGV[1]
local stats = base .. 'n'
local FIELDS = {'4s', '4l', '6s', '6l'}
local function sets(tid)
  local sk = base .. tid .. ':'
  return {sk .. '4s', sk .. '4l', sk .. '6s', sk .. '6l'}, sk .. 'm'
end
-- Appends a swarm's complete, incomplete and downloaded to out (from its meta hash: one call).
local function counts(tid, out)
  local _, meta = sets(tid)
  local m = redis.call('HMGET', meta, 'd', '4s', '4l', '6s', '6l')
  out[#out + 1] = tonumber(m[2] or '0') + tonumber(m[4] or '0')
  out[#out + 1] = tonumber(m[3] or '0') + tonumber(m[5] or '0')
  out[#out + 1] = tonumber(m[1] or '0')
end
-- Removes endpoints eps from set i of a swarm (keys, meta: sets(tid)) with their flags and counts;
-- returns how many were there.
local function removePeers(keys, meta, i, eps)
  local gone = 0
  for _, ep in ipairs(eps) do
    if redis.call('ZREM', keys[i], ep) == 1 then
      redis.call('HDEL', meta, ep)
      gone = gone + 1
    end
  end
  if gone > 0 then
    redis.call('HINCRBY', stats, FIELDS[i], -gone)
    redis.call('HINCRBY', meta, FIELDS[i], -gone)
  end
  return gone
end
local function settle(tid, keys, meta)
  local oldest = nil
  for i = 1, 4 do
    local first = redis.call('ZRANGE', keys[i], 0, 0, 'WITHSCORES')
    if first[2] then
      local s = tonumber(first[2])
      if oldest == nil or s < oldest then oldest = s end
    end
  end
  if oldest == nil then
    redis.call('DEL', meta)
    if redis.call('ZREM', idx, tid) == 1 then redis.call('HINCRBY', stats, 't', -1) end
  elseif redis.call('ZADD', idx, oldest, tid) == 1 then
    redis.call('HINCRBY', stats, 't', 1)
  end
end
`;

/**
 * Peer selection, shared with the WebRTC announce (rtc-scripts.ts). `pick` appends to `out` up to
 * `count` distinct members of `key` (which has `card`) other than `me` (`self`: whether `me` is
 * in it): ZRANDMEMBER with a positive count never repeats a member. `split` divides `want` between
 * `ns` seeders and `nl` leechers in proportion to their numbers (rounded at random by `r`), so
 * that each peer has about the same chance.
 */
export const SELECT = `
local function pick(out, key, card, count, self, me)
  if count <= 0 then return end
  local got
  if card - (self and 1 or 0) <= count then
    got = redis.call('ZRANGE', key, 0, -1)
  else
    got = redis.call('ZRANDMEMBER', key, count + (self and 1 or 0))
  end
  local taken = 0
  for i = 1, #got do
    if taken < count and got[i] ~= me then
      out[#out + 1] = got[i]
      taken = taken + 1
    end
  end
end
local function split(want, ns, nl, r)
  if ns + nl <= want then return ns, nl end
  local ks = math.floor(want * ns / (ns + nl) + r)
  if ks > ns then ks = ns end
  local kl = want - ks
  if kl > nl then
    kl = nl
    ks = want - kl
  end
  return ks, kl
end
`;

/**
 * Private mode's Lua over a peer's accounting baseline (member x torrent x peer id, field A[10] of
 * the hash akey), shared by the announce (ANNOUNCE_FN) and a WebTorrent peer's accounting
 * (ACCOUNT): `judge` reads it and applies the rules, `account` replaces it. A as in `announce(A)`.
 */
const BASELINES = `
-- The time of a baseline 'uploaded:downloaded:at:seeding'.
local function atOf(b) return tonumber(string.match(b, '^[^:]*:[^:]*:([^:]*)')) end
-- Private mode: replaces the peer's baseline in akey (or drops it on 'stopped'); returns the
-- seeding seconds to credit. (A function of its own, not a closure made for every announce.)
local function account(A, akey, prev, prevAt, event, seeder, now)
  if akey == nil then return 0 end
  local seed = 0
  if prev and event ~= 2 and string.sub(prev, -1) == '1' then
    local from = math.max(prevAt, tonumber(redis.call('HGET', akey, '~') or '0'))
    if now > from then
      seed = now - from
      redis.call('HSET', akey, '~', now)
    end
  end
  if event == 3 then
    redis.call('HDEL', akey, A[10])
  else
    redis.call('HSET', akey, A[10], A[13] .. ':' .. now .. ':' .. (seeder and '1' or '0'))
  end
  redis.call('EXPIRE', akey, 2 * tonumber(A[17]))
  return seed
end
-- Private mode: the peer's live baseline in akey (false if none; older than the peer timeout is
-- forgotten, as the accountant forgets it in memory), its time, and 1 if the announce is early;
-- or, as a fourth value, the rule that refuses it ('torrent', 'early'). The rules of issue #16: a
-- new peer beyond the member's limit on the torrent is refused; an announce closer than the gap
-- to the same peer's previous one is early. 'stopped' always passes (and 'completed' is never
-- early): a client must be able to leave, a snatch must count.
local function judge(A, akey, event, now)
  local cutoff = now - tonumber(A[17])
  local prev, prevAt, early = redis.call('HGET', akey, A[10]), 0, 0
  if prev then
    prevAt = atOf(prev)
    if prevAt < cutoff then prev = false end
  end
  if event ~= 3 then
    if not prev then
      local limit = tonumber(A[14])
      if limit > 0 then
        local live = 0
        local all = redis.call('HGETALL', akey)
        for i = 1, #all, 2 do
          if all[i] ~= '~' then
            if atOf(all[i + 1]) < cutoff then redis.call('HDEL', akey, all[i]) else live = live + 1 end
          end
        end
        if live >= limit then return false, 0, 0, 'torrent' end
      end
    elseif event ~= 1 and now - prevAt < tonumber(A[15]) then
      if A[16] == '1' then return false, 0, 0, 'early' end
      early = 1
    end
  end
  return prev, prevAt, early
end
`;

/**
 * Announce (`announce(A)`, run by ANNOUNCE_BATCH for each record): counts and peers for the
 * requester (before its announce is applied, STYLE.md example 6), then the announce itself.
 * A: base, info hash (20 bytes), endpoint (6 or 18 bytes), family ('4'|'6'), seeder ('1'|'0'),
 * event (0-3), numwant, want ids ('1'|'0'), now, peer id (20 bytes), r (a uniform [0,1) draw),
 * then the private-mode part (A[12] '' when there is none):
 * 12 the baseline hash under base ('a:<torrent id>:<member id>'), 13 'uploaded:downloaded' as
 * reported now, 14 peers_per_torrent (0 = no limit), 15 the early-announce gap in seconds (0 =
 * off), 16 '1' to refuse an early announce ('0' warns), 17 the peer timeout in seconds; and 18,
 * now as a string (made once per batch).
 * Returns {complete, incomplete, downloaded, peers (records, concatenated), ids, known, previous
 * baseline ('uploaded:downloaded:at:seeding', '' if none), seeding seconds to credit, 1 if early},
 * or {-1, 'torrent' | 'early'} when a private-mode rule refuses it (nothing is changed then).
 *
 * Private mode (issue #14): the accounting baseline of a peer (member × torrent × peer id) lives
 * here, beside its swarm, in the bucket of the torrent's route hash (both hashes of a hybrid), so
 * that whichever instance an announce reaches, it reads and replaces the baseline the previous
 * announce left, in the same atomic step as the swarm update: each delta is credited once.
 * A baseline older than the peer timeout is forgotten (as the accountant forgets it in memory);
 * field '~' of the hash is the member's seeding time credited up to (one second a second over all
 * its peer ids).
 */
const ANNOUNCE_FN = `
${PRELUDE}
${SELECT}
${BASELINES}
local function announce(A)
  local tid, ep, fam = A[2], A[3], A[4]
  local seeder = A[5] == '1'
  local event = tonumber(A[6])
  local want = tonumber(A[7])
  local now = tonumber(A[9])
  -- ZADD's score as a string: Redis formats a number argument with printf at every call.
  local nowS = A[18] or now
  -- Only the requester's family's two sets are touched (the counts are in the meta hash).
  local sk = base .. tid .. ':'
  local meta = sk .. 'm'
  -- One read: the swarm's completions and counts, and the requester's meta value. It comes first
  -- and is guarded: in a batch on a Cluster, a swarm whose slot is not (or no longer) on this
  -- master is reported, untouched, for the caller to send again alone.
  local m = redis.pcall('HMGET', meta, 'd', '4s', '4l', '6s', '6l', ep, 'p')
  if m.err then return m end
  local akey, prev, prevAt, early = nil, false, 0, 0
  if A[12] ~= '' then
    akey = base .. A[12]
    local refused
    prev, prevAt, early, refused = judge(A, akey, event, now)
    if refused then return {-1, refused} end
  end
  local fs, fl = sk .. fam .. 's', sk .. fam .. 'l'
  local iS, iL = 1, 2
  if fam == '6' then iS, iL = 3, 4 end
  local downloaded = tonumber(m[1] or '0')
  local n = {tonumber(m[2] or '0'), tonumber(m[3] or '0'), tonumber(m[4] or '0'), tonumber(m[5] or '0')}
  local old = m[6]
  local keepIds = m[7] and true or false
  -- The meta value's flag byte says where the requester is: '0' leecher, '2' seeder, plus 1 once
  -- its completion was counted; no value, not in the swarm.
  local flag = old and (string.byte(old, 1) - 48) or -1
  local inS, inL = flag >= 2, flag == 0 or flag == 1
  local complete, incomplete = n[1] + n[3], n[2] + n[4]
  if inS then complete = complete - 1 elseif inL then incomplete = incomplete - 1 end
  if event == 3 then
    if inS or inL then
      local key, i = fs, iS
      if inL then key, i = fl, iL end
      if redis.call('ZREM', key, ep) == 1 then
        redis.call('HINCRBY', stats, FIELDS[i], '-1')
        redis.call('HSET', meta, FIELDS[i], n[i] - 1)
      end
      if complete + incomplete == 0 then
        -- The last peer: the swarm is freed (its meta hash, with the completion count, and its
        -- index entry).
        redis.call('DEL', meta)
        if redis.call('ZREM', idx, tid) == 1 then redis.call('HINCRBY', stats, 't', -1) end
      else
        redis.call('HDEL', meta, ep)
      end
    end
    local seed = account(A, akey, prev, prevAt, event, seeder, now)
    return {complete, incomplete, downloaded, '', '', '', prev or '', seed, early}
  end

  -- Peers (SELECT): never the requester.
  local out = {}
  local cs, cl = n[iS], n[iL]
  if want > 0 then
    if seeder then
      -- A seeder needs no seeders.
      pick(out, fl, cl, want, inL, ep)
    else
      local ks, kl = split(want, cs - (inS and 1 or 0), cl - (inL and 1 or 0), tonumber(A[11]))
      pick(out, fs, cs, ks, inS, ep)
      pick(out, fl, cl, kl, inL, ep)
    end
  end

  -- Apply the announce. The meta hash's writes (counts, completions, the peer's value) go in one
  -- HSET; each count is changed only where ZADD added or ZREM removed, so it stays the set's
  -- cardinality (as the bucket statistics stay exact).
  local key, other, i, o = fl, fs, iL, iS
  if seeder then key, other, i, o = fs, fl, iS, iL end
  local set = {}
  if redis.call('ZADD', key, nowS, ep) == 1 then
    redis.call('HINCRBY', stats, FIELDS[i], '1')
    set[#set + 1] = FIELDS[i]
    set[#set + 1] = n[i] + 1
  end
  if (seeder and inL) or ((not seeder) and inS) then
    if redis.call('ZREM', other, ep) == 1 then
      redis.call('HINCRBY', stats, FIELDS[o], '-1')
      set[#set + 1] = FIELDS[o]
      set[#set + 1] = n[o] - 1
    end
  end
  local counted = flag == 1 or flag == 3
  if event == 1 and not counted then
    counted = true
    downloaded = downloaded + 1
    set[#set + 1] = 'd'
    set[#set + 1] = downloaded
  end
  -- Peer ids are kept from a swarm's first request that asks for them ('p' in the meta hash), as
  -- the memory store records them: a swarm only ever asked over UDP or with compact=1 keeps none
  -- (20 bytes a peer, and no write when a client's peer id changes).
  if A[8] == '1' and not keepIds then
    keepIds = true
    set[#set + 1] = 'p'
    set[#set + 1] = '1'
  end
  local value = string.char(48 + (counted and 1 or 0) + (seeder and 2 or 0)) .. (keepIds and A[10] or '')
  if old ~= value then
    set[#set + 1] = ep
    set[#set + 1] = value
  end
  if #set > 0 then redis.call('HSET', meta, unpack(set)) end
  -- A new swarm enters the bucket index. Its score is a lower bound of the swarm's oldest
  -- last-seen: an announce only moves a peer's time forward, so it is left alone here; the sweep
  -- sets it to the true oldest (settle) when it visits a swarm whose score has passed the cutoff.
  -- (A peer written by an instance whose clock is behind may be older than the score: it then
  -- expires late by that clock difference.)
  if complete + incomplete == 0 and not (inS or inL) then
    if redis.call('ZADD', idx, nowS, tid) == 1 then redis.call('HINCRBY', stats, 't', '1') end
  end

  local ids, known = '', ''
  if A[8] == '1' and #out > 0 then
    local values = redis.call('HMGET', meta, unpack(out))
    local idl, kl = {}, {}
    for i = 1, #out do
      local v = values[i]
      if v and #v == 21 then
        idl[i] = string.sub(v, 2)
        kl[i] = '\\1'
      else
        idl[i] = string.rep('\\0', 20)
        kl[i] = '\\0'
      end
    end
    ids, known = table.concat(idl), table.concat(kl)
  end
  local seed = account(A, akey, prev, prevAt, event, seeder, now)
  return {complete, incomplete, downloaded, table.concat(out), ids, known, prev or '', seed, early}
end
`;

/**
 * The error an announce call answers when it starts after its deadline (ANNOUNCE_BATCH ARGV[3];
 * HERALD.ANNOUNCE's fifth argument, native/redis/herald.c, which answers the same words).
 */
export const LATE = 'LATE herald: the call started after its deadline, nothing was changed';

/**
 * Lua for a script that Herald gives a deadline (the member limits' claims, slots.ts): `ms`, the
 * server's time in milliseconds (one TIME), and the call refused with LATE, untouched, when it
 * starts after the deadline in ARGV[`at`] (ms by this server's clock, '0': none;
 * RedisSwarmStore.deadlineFor), as ANNOUNCE_BATCH refuses one. Goes before the script's first write.
 */
export function timeWithin(at: number): string {
  return `local t = redis.call('TIME')
local ms = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local deadline = tonumber(ARGV[${at}])
if deadline > 0 and ms > deadline then return redis.error_reply('${LATE}') end`;
}

/**
 * Private mode, a WebTorrent peer's announce (its swarm is not here: rtc-swarms.ts): the exchange
 * of its accounting baseline and the rules of `announce` on it (`judge`, `account`), on the same
 * baselines as the member's other peers on the torrent, so that `peers_per_torrent`, and download
 * slots judged from the baselines (slots.ts), count browsers on every instance with the rest.
 * KEYS[1] the baseline hash ('<prefix>:{<bucket>}:a:<torrent id>:<member id>'). ARGV: 1 peer id,
 * 2 'uploaded:downloaded', 3 peers_per_torrent, 4 the early gap (s), 5 '1' to refuse an early
 * announce, 6 the peer timeout (s), 7 the event (0-3), 8 '1' seeding, 9 now (s), 10 the call's
 * deadline (as the announce's: `timeWithin`). Returns {previous baseline or '', seeding seconds to
 * credit, 1 if early}, or {-1, 'torrent' | 'early'} (nothing changed).
 */
export const ACCOUNT = `#!lua
${BASELINES}
${timeWithin(10)}
local A = {}
A[10], A[13], A[14], A[15], A[16], A[17] = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6]
local akey, event, now = KEYS[1], tonumber(ARGV[7]), tonumber(ARGV[9])
local prev, prevAt, early, refused = judge(A, akey, event, now)
if refused then return {-1, refused} end
local seed = account(A, akey, prev, prevAt, event, ARGV[8] == '1', now)
return {prev or '', seed, early}
`;

/**
 * Announces in one call (issue #14: one EVALSHA's dispatch, parsing and round trip shared by the
 * announces of an event-loop turn; one argument and one reply string for all of them, so neither
 * side converts a dozen values per announce). ARGV[1] is the key prefix, ARGV[2] the announces,
 * each a record packed big-endian (redis-store.ts `announceRecord`):
 *   H bucket, B flags (1 IPv6, 2 seeder, 4 peer ids wanted), B event (0-3), H numwant, I now,
 *   I r (a uniform [0, 2^32) draw), c20 info hash, c20 peer id, B+c endpoint (6 or 18 bytes),
 *   B private (0 or 1), then when private: H+c baseline hash ('a:<torrent id>:<member id>'),
 *   H+c 'uploaded:downloaded', I peers_per_torrent, I early gap (s), B refuse early, I peer timeout.
 * KEYS[1] is the first announce's bucket index (it routes the call on a Cluster). On one server
 * every key is local; on a Cluster the caller groups announces by the master that holds their
 * slots (allow-cross-slot-keys lets one script reach several slots of its node), and an announce
 * whose slot is not here (moved since) is skipped, untouched, and reported. Each announce is
 * whole: all of its keys are in one slot, so its guarded first call decides.
 * ARGV[3] is the call's deadline in milliseconds by the Redis server's clock ('0': none): a call
 * that starts after it changes nothing and answers the error LATE (redis-store.ts `#deadline`).
 * Returns one string: per announce, a header packed big-endian (B status: 0 done, 1 refused
 * (peer limit), 2 refused (early), 3 skipped; I complete, I incomplete, I downloaded, H peers
 * bytes, H ids bytes, H previous baseline bytes, I seeding seconds, B early) then the peers, the
 * ids, one known-byte per id, and the previous baseline, as `announce` returns them.
 */
export const ANNOUNCE_BATCH = `#!lua flags=allow-cross-slot-keys
${ANNOUNCE_FN}
local prefix, s = ARGV[1], ARGV[2]
-- The call's deadline by this server's clock (ms; '0': none): a call that starts later than it is
-- refused whole, untouched, because the instance that sent it has given up on it (redis-store.ts
-- #deadline). TIME is read once: the script runs whole.
local deadline = tonumber(ARGV[3])
if deadline > 0 then
  local t = redis.call('TIME')
  if tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000) > deadline then return redis.error_reply('${LATE}') end
end
local bases = {}
local out = {}
local pos, len = 1, #s
local A = {}
local lastNow = -1
while pos <= len do
  local b, fl, ev, nw, now, r, h, pid, ep, priv
  b, fl, ev, nw, now, r, h, pid, ep, priv, pos = struct.unpack('>HBBHIIc20c20Bc0B', s, pos)
  base = bases[b]
  if base == nil then
    base = prefix .. ':{' .. b .. '}:'
    bases[b] = base
  end
  idx = base .. 'i'
  stats = base .. 'n'
  A[1], A[2], A[3] = base, h, ep
  A[4] = fl % 2 == 1 and '6' or '4'
  A[5] = math.floor(fl / 2) % 2 == 1 and '1' or '0'
  A[6], A[7] = ev, nw
  A[8] = math.floor(fl / 4) % 2 == 1 and '1' or '0'
  A[9], A[10], A[11] = now, pid, r / 4294967296
  if now ~= lastNow then
    lastNow = now
    A[18] = tostring(now)
  end
  if priv == 1 then
    A[12], A[13], A[14], A[15], A[16], A[17], pos = struct.unpack('>Hc0Hc0IIBI', s, pos)
    A[16] = A[16] == 1 and '1' or '0'
  else
    A[12] = ''
  end
  local x = announce(A)
  if x.err then
    out[#out + 1] = struct.pack('>BIIIHHHIB', 3, 0, 0, 0, 0, 0, 0, 0, 0)
  elseif x[1] == -1 then
    out[#out + 1] = struct.pack('>BIIIHHHIB', x[2] == 'torrent' and 1 or 2, 0, 0, 0, 0, 0, 0, 0, 0)
  else
    out[#out + 1] = struct.pack('>BIIIHHHIB', 0, x[1], x[2], x[3], #x[4], #x[5], #x[7], x[8], x[9])
    out[#out + 1] = x[4]
    out[#out + 1] = x[5]
    out[#out + 1] = x[6]
    out[#out + 1] = x[7]
  end
end
return table.concat(out)
`;

/**
 * The two scrape scripts over a `prelude` that defines `idx` (the bucket's index of swarms) and
 * `counts(h, out)` (appends a swarm's complete, incomplete and downloaded): the TCP/UDP swarms'
 * below and the WebRTC swarms' (rtc-scripts.ts) share them.
 * - scrape: ARGV base, then info hashes (20 bytes each, all of this bucket); returns
 *   {complete, incomplete, downloaded} per hash, flattened.
 * - page: one page of the bucket's swarms for a full scrape: ARGV base, first rank, count;
 *   returns {info hash, complete, incomplete, downloaded, ...}.
 */
export function scrapeScripts(prelude: string): { scrape: string; page: string } {
  return {
    scrape: `#!lua flags=no-writes
${prelude}
local out = {}
for a = 2, #ARGV do counts(ARGV[a], out) end
return out
`,
    page: `#!lua flags=no-writes
${prelude}
local first = tonumber(ARGV[2])
local out = {}
for _, h in ipairs(redis.call('ZRANGE', idx, first, first + tonumber(ARGV[3]) - 1)) do
  out[#out + 1] = h
  counts(h, out)
end
return out
`,
  };
}

export const { scrape: SCRAPE, page: SCRAPE_PAGE } = scrapeScripts(PRELUDE);

/**
 * Expiry of several buckets in one call (issue #14: 1024 calls a second cost every instance more
 * CPU than a modest announce load): ARGV cutoff (peers last seen at or before it go), budget
 * (most peers removed by this call), then the key bases of the buckets; KEYS[1] is the first
 * bucket's index (it routes the call on a Cluster, where the caller groups buckets by master:
 * allow-cross-slot-keys). In each bucket only swarms whose oldest peer may be expired are visited
 * (the index score, a lower bound of the oldest last-seen), at most 100 of them; each visited
 * swarm's score is set to its true oldest (settle), so one whose oldest peer has announced since
 * is visited once and moves on. Safe when every instance sweeps at once: scripts run one at a
 * time, and a peer's removal is counted only where ZREM removed it. Returns {removed, then per
 * bucket 1 if there may be more to do there, 0 if not, -1 if its slot is not on this master}.
 */
export const SWEEP = `#!lua flags=allow-oom,allow-cross-slot-keys
${PRELUDE}
local cutoff = tonumber(ARGV[1])
local budget = tonumber(ARGV[2])
local removed = 0
local flags = {0}
for a = 3, #ARGV do
  base = ARGV[a]
  idx = base .. 'i'
  stats = base .. 'n'
  local swarms = redis.pcall('ZRANGEBYSCORE', idx, '-inf', cutoff, 'LIMIT', 0, 100)
  if swarms.err then
    flags[#flags + 1] = -1
  elseif removed >= budget then
    flags[#flags + 1] = #swarms > 0 and 1 or 0
  else
    for _, tid in ipairs(swarms) do
      if removed >= budget then break end
      local keys, meta = sets(tid)
      for i = 1, 4 do
        if removed >= budget then break end
        local eps = redis.call('ZRANGEBYSCORE', keys[i], '-inf', cutoff, 'LIMIT', 0, budget - removed)
        removed = removed + removePeers(keys, meta, i, eps)
      end
      settle(tid, keys, meta)
    end
    flags[#flags + 1] = (removed >= budget or #swarms == 100) and 1 or 0
  end
end
flags[1] = removed
return flags
`;

/**
 * Drops swarms whole (policy: a hash off the allow list, onto the deny list): every peer of each
 * info hash in ARGV[2..] (bucket ARGV[1], index KEYS[1]), with the bucket's statistics and index
 * kept exact as the sweep keeps them. Returns the number of peers removed.
 */
export const DROP = `#!lua flags=allow-oom
${PRELUDE}
local removed = 0
for a = 2, #ARGV do
  local tid = ARGV[a]
  local keys, meta = sets(tid)
  for i = 1, 4 do removed = removed + removePeers(keys, meta, i, redis.call('ZRANGE', keys[i], 0, -1)) end
  settle(tid, keys, meta)
end
return removed
`;
