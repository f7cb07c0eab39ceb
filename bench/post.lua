-- wrk script for bench/run.sh: POST the prepared batch bodies round-robin.
--
-- Environment (read by every wrk thread):
--   BENCH_LIST      file listing one body path per line
--   BENCH_AUTH      the Authorization header value
--   BENCH_ENCODING  the Content-Encoding header value for the bodies (e.g.
--                   "application/gzip", as Konnect sends); unset or empty: none
-- The URL on wrk's command line gives host, port and path. done() prints one
-- line "RESULT key=value ..." for run.sh to parse.

local bodies = {}
local next_body = 1
local counter = 0

function setup(thread)
  counter = counter + 1
  thread:set("offset", counter)
end

function init(args)
  local list = assert(os.getenv("BENCH_LIST"), "BENCH_LIST is not set")
  local headers = {
    ["Authorization"] = assert(os.getenv("BENCH_AUTH"), "BENCH_AUTH is not set"),
    ["Content-Type"] = "text/plain",
  }
  local encoding = os.getenv("BENCH_ENCODING")
  if encoding and #encoding > 0 then
    headers["Content-Encoding"] = encoding
  end
  for path in io.lines(list) do
    if #path > 0 then
      local f = assert(io.open(path, "rb"))
      bodies[#bodies + 1] = wrk.format("POST", nil, headers, f:read("*a"))
      f:close()
    end
  end
  assert(#bodies > 0, "no bodies listed in " .. list)
  -- Threads start at different bodies.
  next_body = ((offset or 1) * 5) % #bodies + 1
end

function request()
  local r = bodies[next_body]
  next_body = next_body % #bodies + 1
  return r
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    "RESULT requests=%d duration_us=%d non2xx=%d socket_errors=%d p50_us=%d p99_us=%d max_us=%d\n",
    summary.requests, summary.duration, e.status,
    e.connect + e.read + e.write + e.timeout,
    latency:percentile(50), latency:percentile(99), latency.max))
end
