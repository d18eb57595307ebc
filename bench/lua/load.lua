-- One wrk script for every operation: wrk ... -s load.lua URL -- MODE TOKEN DATAFILE
-- MODE: create | create_suggest | rt_create | get | transition
-- DATAFILE lines: JSON bodies (create modes), numbers in turn (transition) or paths (get)
-- TOKEN: an itsm API token, "Cookie: <session cookie>" (Request Tracker), or "-".
-- Prints one JSON line with the figures at the end.
local mode, token, items, counter = nil, nil, {}, 0
local headers = {}

function init(args)
  mode, token = args[1], args[2]
  if args[3] and args[3] ~= "-" then
    for line in io.lines(args[3]) do
      if #line > 0 then items[#items + 1] = line end
    end
  end
  headers["Content-Type"] = "application/json"
  if token and token:sub(1, 7) == "Cookie:" then
    headers["Cookie"] = token:sub(9)
  elseif token and token ~= "-" then
    headers["Authorization"] = "Bearer " .. token
  end
  math.randomseed(os.time())
  counter = math.random(1, 1000000)
  if mode == "transition" then counter = 0 end  -- each record once, in turn
end

function request()
  counter = counter + 1
  if mode == "create" or mode == "create_suggest" then
    -- create: as an integration posts, without the suggestions (the operation the
    -- bare app mirrors); create_suggest: as the console does, with them
    local path = mode == "create" and "/api/v1/incidents?suggest=false" or "/api/v1/incidents"
    -- bodies drawn as the loaded incidents are (bench.generate.create_bodies), in turn
    local body = items[(counter % #items) + 1]
    return wrk.format("POST", path, headers, body)
  elseif mode == "rt_create" then
    local body = items[(counter % #items) + 1]
    return wrk.format("POST", "/REST/2.0/ticket", headers, body)
  elseif mode == "transition" then
    local number = items[(counter % #items) + 1]
    headers["If-Match"] = '"1"'
    return wrk.format("POST", "/api/v1/incidents/" .. number .. "/transitions", headers,
                      '{"name":"start"}')
  else
    return wrk.format("GET", items[math.random(1, #items)], headers)
  end
end

function done(summary, latency, requests)
  local errors = summary.errors.connect + summary.errors.read + summary.errors.write
    + summary.errors.timeout + summary.errors.status
  io.write(string.format('BENCH {"requests":%d,"seconds":%.3f,"rps":%.1f,"p50_ms":%.2f,'
    .. '"p99_ms":%.2f,"max_ms":%.2f,"errors":%d,"non_2xx":%d}\n',
    summary.requests, summary.duration / 1e6, summary.requests / (summary.duration / 1e6),
    latency:percentile(50) / 1000, latency:percentile(99) / 1000, latency.max / 1000,
    errors, summary.errors.status))
end
