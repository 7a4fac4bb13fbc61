-- bench/paced.sh: every connection waits DELAY_MS before each request, so the offered load
-- does not depend on the proxy's speed.
local pause = tonumber(os.getenv("DELAY_MS") or "2")
function delay()
  return pause
end
