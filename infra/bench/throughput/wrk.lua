-- wrk script of bench_throughput.sh.
--   wrk ... -s wrk.lua URL -- create FILE KEY [HEADER PATH]
--                                               signed creates read from FILE (requests.py),
--                                               each sent once: thread t of n takes lines
--                                               t, t+n, t+2n, ...; the signature goes in
--                                               HEADER (Authorization-Signature), the POST
--                                               to PATH (/pay-orders)
--   wrk ... -s wrk.lua URL -- get PATH KEY      GET PATH with the API key, again and again
-- and at the end one line: RESULT requests seconds rps p50_ms p99_ms non2xx socket_errors
-- (non2xx also counts creates sent after FILE ran out: they would repeat a nonce).

local threads = {}
local counter = 0

function setup(thread)
  thread:set("id", counter)
  table.insert(threads, thread)
  counter = counter + 1
end

function init(args)
  mode, arg, key = args[1], args[2], args[3]
  local sig_header, path = args[4] or "Authorization-Signature", args[5] or "/pay-orders"
  nthreads = tonumber(os.getenv("WRK_THREADS") or "1")
  if mode == "create" then
    reqs = {}
    local n = 0
    for line in io.lines(arg) do
      if n % nthreads == id then
        local sig, body = line:match("^([^\t]*)\t(.*)$")
        reqs[#reqs + 1] = wrk.format("POST", path, {
          ["X-API-Key"] = key,
          [sig_header] = sig,
          ["Content-Type"] = "application/json",
        }, body)
      end
      n = n + 1
    end
    next_req = 1
  else
    get_req = wrk.format("GET", arg, { ["X-API-Key"] = key })
  end
end

function request()
  if mode == "create" then
    local r = reqs[next_req]
    if next_req < #reqs then next_req = next_req + 1 end
    return r
  end
  return get_req
end

function done(summary, latency, requests)
  local secs = summary.duration / 1e6
  local e = summary.errors
  io.write(string.format("RESULT %d %.3f %.1f %.3f %.3f %d %d\n",
    summary.requests, secs, summary.requests / secs,
    latency:percentile(50) / 1000, latency:percentile(99) / 1000,
    e.status, e.connect + e.read + e.write + e.timeout))
end
