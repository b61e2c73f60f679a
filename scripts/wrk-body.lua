-- wrk script: POSTs the body in $BODY_FILE to /openim/$COMMAND, unchanged
-- (a quick per-command cost comparison; see BENCHMARKS.md).
local f = io.open(os.getenv("BODY_FILE"), "r")
local body = f:read("*a")
f:close()
wrk.method = "POST"
wrk.body = body
wrk.headers["Content-Type"] = "application/json; charset=utf-8"
wrk.path = "/openim/" .. os.getenv("COMMAND")
