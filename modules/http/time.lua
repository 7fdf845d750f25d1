-- time.lua (module "http.time"): UTC times as they travel on the wire —
-- RFC 3339 timestamps (AWS Expiration, Kubernetes expirationTimestamp,
-- Portworx ctime) and the civil dates of HTTP-date headers — as epoch
-- seconds, independent of the local time zone. Pure Lua; requires nothing.
-- It sits under http because every module that reads such times (aws, kube,
-- portworx) already depends on http.
local M = {}

---Seconds since the epoch of a UTC civil date (proleptic Gregorian).
---@param y integer
---@param m integer 1-12
---@param d integer
---@param hh integer
---@param mi integer
---@param ss integer
---@return integer
function M.utc_epoch(y, m, d, hh, mi, ss)
  if m <= 2 then y, m = y - 1, m + 12 end
  local days = 365 * y + y // 4 - y // 100 + y // 400 + (153 * (m - 3) + 2) // 5 + d - 719469
  return days * 86400 + hh * 3600 + mi * 60 + ss
end

---An RFC 3339 timestamp ("2030-01-01T00:00:00Z", "...T10:00:00.5+02:00";
---"t" or a space may separate date and time) as whole epoch seconds and the
---fraction of a second (0 <= fraction < 1), or nil when s is not one. A
---timestamp without a zone is nil unless utc_default, when it is read as UTC.
---@param s any
---@param utc_default? boolean
---@return integer? seconds
---@return number? fraction
function M.rfc3339(s, utc_default)
  if type(s) ~= "string" then return nil end
  local y, mo, d, hh, mi, ss, rest = s:match("^(%d%d%d%d)%-(%d%d)%-(%d%d)[Tt ](%d%d):(%d%d):(%d%d)(.*)$")
  if not y then return nil end
  local frac, zone = rest:match("^(%.%d+)(.*)$")
  if not frac then frac, zone = "", rest end
  local t = M.utc_epoch(tonumber(y), tonumber(mo), tonumber(d), tonumber(hh), tonumber(mi), tonumber(ss))
  local fraction = frac ~= "" and tonumber("0" .. frac) or 0
  if zone == "Z" or zone == "z" or (zone == "" and utc_default) then return t, fraction end
  local sign, oh, om = zone:match("^([+-])(%d%d):?(%d%d)$")
  if not sign then return nil end
  local off = tonumber(oh) * 3600 + tonumber(om) * 60
  return sign == "+" and t - off or t + off, fraction
end

return M
