-- wrk script for bench/proxy.pl: webhook deliveries spread over 1,000
-- endpoints (ep-0 .. ep-999) owned by 50 users (user-0 .. user-49; endpoint
-- ep-N always belongs to user-(N % 50), as an endpoint has one owner).
--
--   wrk -t1 -c32 -d5s -s bench/webhooks.lua http://127.0.0.1:PORT -- PREFIX
--
-- PREFIX is the first path segment: "plain" or "hooks" (default "hooks").
-- Every request is built once in init(); request() only walks the table
-- round robin, so the Lua cost per request is a table lookup.

local ENDPOINTS = 1000
local USERS = 50

local requests = {}
local count = 0
local next_index = 0

function init(args)
    local prefix = args[1] or "hooks"
    local body = '{"id":"evt_0001","type":"invoice.paid","created":1767225600,'
        .. '"data":{"object":{"id":"in_0001","amount_paid":4200,'
        .. '"currency":"eur","customer":"cus_0001"}}}'

    for e = 0, ENDPOINTS - 1 do
        local headers = {
            ["Content-Type"] = "application/json",
            ["Content-Length"] = tostring(#body),
            ["X-Mitte-User"] = "user-" .. (e % USERS),
        }
        count = count + 1
        requests[count] = wrk.format("POST", "/" .. prefix .. "/ep-" .. e,
                                     headers, body)
    end
end

function request()
    next_index = next_index % count + 1
    return requests[next_index]
end

-- one line that bench/proxy.pl parses; wrk's own report goes before it
function done(summary, latency, requests)
    local e = summary.errors
    io.write(string.format(
        "BENCH requests=%d duration_us=%d connect=%d read=%d write=%d "
        .. "status=%d timeout=%d p50_us=%d p99_us=%d\n",
        summary.requests, summary.duration, e.connect, e.read, e.write,
        e.status, e.timeout, latency:percentile(50), latency:percentile(99)))
end
