-- wrk script for `npm run bench`: announces (or scrapes) over the benchmark's info hashes with
-- varying peer ids, ports and events, and checks every response body.
-- args: HASHFILE MODE PEERS [PASSKEYFILE [START]]
--   MODE announce | scrape: random torrents, PEERS peers per torrent.
--   MODE fill | peers (the rules row, issue #16): a fixed population of PEERS peers, each a member
--   on one torrent: peer i is member i % MEMBERS (a passkey of PASSKEYFILE; none, open mode, when
--   it is "-"), on the torrent of bench/rules-site.ts `torrentOf` (popular torrents have more
--   peers), leeching for one peer of a member in four; `fill` announces each once, in order, with
--   `started`, from peer START (default 0) on (after the last, the first again); `peers` picks
--   them at random. Counters grow with every request.
-- WRK_PORTS=P1,P2 (the floor row: independent trackers side by side): thread i sends to port
-- i % ports on 127.0.0.1 instead of the URL's (run wrk with as many threads as ports).
local threads = {}
local split = os.getenv("WRK_PORTS")
function setup(thread)
  table.insert(threads, thread)
  if split then
    local ports = {}
    for p in split:gmatch("%d+") do ports[#ports + 1] = p end
    thread.addr = wrk.lookup("127.0.0.1", ports[(#threads - 1) % #ports + 1])[1]
  end
end

local function pct(hex)
  return (hex:gsub("..", function(b) return "%" .. b end))
end

function init(args)
  hashes = {}
  for line in io.lines(args[1]) do hashes[#hashes + 1] = pct(line) end
  mode = args[2]
  peers = tonumber(args[3])
  passkeys = {}
  if args[4] and args[4] ~= "-" then
    for line in io.lines(args[4]) do passkeys[#passkeys + 1] = line end
  end
  members = #passkeys > 0 and #passkeys or 10000
  start = tonumber(args[5] or "0")
  invalid = 0
  n = 0
  -- Counters keep growing from one run of wrk to the next (each slice is a new run).
  origin = os.time() * 20000
  expect = mode == "scrape" and "^d5:files" or "^d8:complete"
  math.randomseed(os.time() + math.floor(os.clock() * 1e6))
end

local function torrentOf(i)
  local r = ((i * 2654435761) % 4294967296) / 4294967296
  return math.floor(r * r * #hashes)
end

local function population()
  n = n + 1
  local i
  if mode == "fill" then i = (start + n - 1) % peers else i = math.random(peers) - 1 end
  local leech = math.floor(i / members) % 4 == 0
  local path = #passkeys > 0 and ("/announce/" .. passkeys[i % members + 1]) or "/announce"
  return wrk.format("GET", path .. "?info_hash=" .. hashes[torrentOf(i) + 1] ..
    "&peer_id=" .. string.format("-HB0001-%012d", i) .. "&port=" .. (1024 + i % 60000) ..
    "&uploaded=" .. math.floor((origin + n) / 16) ..
    "&downloaded=" .. (leech and math.floor((origin + n) / 64) or 0) ..
    "&left=" .. (leech and 1000000 or 0) .. "&numwant=50&compact=1" .. (mode == "fill" and "&event=started" or ""))
end

function request()
  if mode == "fill" or mode == "peers" then return population() end
  local h = hashes[math.random(#hashes)]
  if mode == "scrape" then
    return wrk.format("GET", "/scrape?info_hash=" .. h)
  end
  local p = math.random(peers) - 1
  local left = (p % 4 == 0) and 0 or 1000000
  local r = math.random(100)
  local ev = r <= 2 and "&event=completed" or (r <= 4 and "&event=started" or "")
  local pid = string.format("-HB0001-%012d", p)
  return wrk.format("GET", "/announce?info_hash=" .. h .. "&peer_id=" .. pid .. "&port=" .. (1024 + p) ..
    "&uploaded=500&downloaded=1000&left=" .. left .. "&numwant=50&compact=1" .. ev)
end

function response(status, headers, body)
  if status ~= 200 or not body:find(expect) then invalid = invalid + 1 end
end

function done(summary, latency, requests)
  local inv = 0
  for _, t in ipairs(threads) do inv = inv + (t:get("invalid") or 0) end
  local e = summary.errors
  io.write(string.format(
    '{"requests":%d,"seconds":%.3f,"rps":%.0f,"invalid":%d,"errors":%d,"p50_us":%d,"p99_us":%d,"max_us":%d}\n',
    summary.requests, summary.duration / 1e6, summary.requests / (summary.duration / 1e6), inv,
    e.connect + e.read + e.write + e.status + e.timeout, latency:percentile(50), latency:percentile(99), latency.max))
end
