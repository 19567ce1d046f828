-- Signed WHOOP webhooks, each sent once: lines "timestamp<TAB>signature<TAB>body" from
-- $BENCH_WEBHOOKS, signed beforehand in Python (LuaJIT has no HMAC-SHA256).
dofile(os.getenv("BENCH_LUA_DIR") .. "/report.lua")

local reqs, n, i = {}, 0, 0

function init(args)
  for line in io.lines(os.getenv("BENCH_WEBHOOKS")) do
    local ts, sig, body = line:match("^([^\t]+)\t([^\t]+)\t(.+)$")
    n = n + 1
    reqs[n] = wrk.format("POST", "/webhooks/whoop", {
      ["Content-Type"] = "application/json",
      ["X-WHOOP-Signature"] = sig,
      ["X-WHOOP-Signature-Timestamp"] = ts,
    }, body)
  end
end

function request()
  i = i + 1
  if i > n then i = 1 end  -- wraps only if the file was too short: the bench checks for it
  return reqs[i]
end
