-- wrk script for `npm run bench`: announces (or scrapes) over the benchmark's info hashes with
-- varying peer ids, ports and events, and checks every response body.
-- args: HASHFILE MODE(announce|scrape) PEERS_PER_TORRENT
local threads = {}
function setup(thread) table.insert(threads, thread) end

local function pct(hex)
  return (hex:gsub("..", function(b) return "%" .. b end))
end

function init(args)
  hashes = {}
  for line in io.lines(args[1]) do hashes[#hashes + 1] = pct(line) end
  mode = args[2]
  peers = tonumber(args[3])
  invalid = 0
  expect = mode == "scrape" and "^d5:files" or "^d8:complete"
  math.randomseed(os.time() + math.floor(os.clock() * 1e6))
end

function request()
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
