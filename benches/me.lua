-- wrk script of the API benchmark: GET (the URL's path) with the tokens listed in
-- the file named by TOLLGATE_BENCH_TOKENS (one a line), in rotation, as a
-- bearer token (`/healthz` gets the same header, so wrk does the same work
-- for both routes).
local tokens = {}
for line in io.lines(os.getenv("TOLLGATE_BENCH_TOKENS")) do
  tokens[#tokens + 1] = line
end
local sent = 0

request = function()
  sent = sent + 1
  local token = tokens[(sent - 1) % #tokens + 1]
  return wrk.format(nil, nil, { ["Authorization"] = "Bearer " .. token })
end

