-- wrk script: the requests of 'loadgen --mode incr', for wrk.
-- POST /v1/counters/lg:N {"delta":1}, N uniform in [0, keys), seeded per thread.
--
--   wrk -t2 -c64 -d10s --latency -s cmd/peer/loadgen/wrk-incr.lua http://127.0.0.1:7948 -- [keys] [seed]
--
-- The no-op server (loadgen --serve-noop) answers every path, so the same
-- script measures it too.
local threads = 0

function setup(thread)
  threads = threads + 1
  thread:set("id", threads)
end

function init(args)
  keys = tonumber(args[1]) or 10000
  math.randomseed((tonumber(args[2]) or 1) * 1000 + id)
  wrk.method = "POST"
  wrk.body = '{"delta":1}'
  wrk.headers["Content-Type"] = "application/json"
end

function request()
  return wrk.format(nil, "/v1/counters/lg:" .. math.random(0, keys - 1))
end
