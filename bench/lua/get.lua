-- GET with a bearer token from $BENCH_AUTH (empty for the baseline, which reads no token).
local auth = os.getenv("BENCH_AUTH")
if auth and auth ~= "" then
  wrk.headers["Authorization"] = "Bearer " .. auth
end
dofile(os.getenv("BENCH_LUA_DIR") .. "/report.lua")
