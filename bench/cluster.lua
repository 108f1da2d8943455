-- wrk script for bench/cluster.pl: the deliveries of bench/webhooks.lua
-- (1,000 endpoints ep-0 .. ep-999, endpoint ep-N owned by user-(N % 50))
-- spread over several nginx instances, one wrk thread on each.
--
--   MITTE_WRK_PORTS="8001 8002 8003" \
--       wrk -t3 -c48 -d3s -s bench/cluster.lua http://127.0.0.1:8001
--
-- Thread i connects to the i-th port of MITTE_WRK_PORTS (round robin when
-- there are more threads than ports), so that -c is the total number of
-- connections over all the instances. Each thread starts at another place
-- of the list. done() prints the BENCH line bench/cluster.pl parses.

local ENDPOINTS = 1000
local USERS = 50

local ports = {}
local threads = 0

function setup(thread)
    if #ports == 0 then
        for p in string.gmatch(os.getenv("MITTE_WRK_PORTS") or "", "%d+") do
            ports[#ports + 1] = p
        end
        assert(#ports > 0, "MITTE_WRK_PORTS is empty")
    end
    local port = ports[threads % #ports + 1]
    thread.addr = wrk.lookup("127.0.0.1", port)[1]
    thread:set("offset", threads * 337)
    threads = threads + 1
end

local requests = {}
local count = 0
local next_index = 0

function init(args)
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
        requests[count] = wrk.format("POST", "/hooks/ep-" .. e, headers, body)
    end
    next_index = (offset or 0) % count
end

function request()
    next_index = next_index % count + 1
    return requests[next_index]
end

function done(summary, latency, requests)
    local e = summary.errors
    io.write(string.format(
        "BENCH requests=%d duration_us=%d connect=%d read=%d write=%d "
        .. "status=%d timeout=%d p50_us=%d p99_us=%d\n",
        summary.requests, summary.duration, e.connect, e.read, e.write,
        e.status, e.timeout, latency:percentile(50), latency:percentile(99)))
end
