"""Read-only Lua scripts: each API read is one round trip to Redis.

They change nothing (no transition lives here: those are broker/core/store/_lua.py).
Key names come from the same builders the transitions use (``Keys.lua()``). Replies
carry no nil: an absent value is ``""``.
"""

from __future__ import annotations

# The pending ids among a run's open interrupts (pending, or answered and not yet
# applied), oldest first: the run's past interrupts are never read.
_PENDING = """
local function pending_ids(run_id)
  local out = {}
  for _, iid in ipairs(redis.call("ZRANGE", k_run_open(run_id), 0, -1)) do
    if redis.call("HGET", k_interrupt(iid), "status") == "pending" then
      out[#out + 1] = iid
    end
  end
  return out
end
"""

# ARGV: run id. Reply: {run hash (flat), its pending interrupt ids} when the run
# exists, else {{}, its tombstone (the agent id) or ""}.
RUN = (
    _PENDING
    + """
local run_id = ARGV[1]
local h = redis.call("HGETALL", k_run(run_id))
if #h == 0 then
  return {{}, redis.call("GET", k_gone_run(run_id)) or ""}
end
return {h, pending_ids(run_id)}
"""
)

# One page of an index (broker/core/store/reads.py, Reads._page, says what a page is).
# ARGV: record kind ("run" or "interrupt"), the index keys (a JSON list: more than one
# pages their union, as the assignee indexes of a person's names are paged; each gives
# at most a batch, so a batch costs O(batch x indexes)), order ("asc" or "desc"), cursor
# (a score, "" for the first page), limit, most records to look at, "1" to read the
# interrupts' version too, n, then n (field, value) pairs every record must have, then
# the count of visible agents (-1: every agent) and those agents.
# Reply: {interrupts' version or "", next cursor or "", record...}; a record is its hash
# (flat), or for runs {hash, pending interrupt ids}.
PAGE = (
    _PENDING
    + """
local kind, indexes, desc = ARGV[1], cjson.decode(ARGV[2]), ARGV[3] == "desc"
local bound, limit, max_scan = ARGV[4], tonumber(ARGV[5]), tonumber(ARGV[6])
local version = ""
if ARGV[7] == "1" then version = redis.call("GET", K_IVERSION) or "0" end
local wanted, i = {}, 9
for _ = 1, tonumber(ARGV[8]) do
  wanted[#wanted + 1] = {ARGV[i], ARGV[i + 1]}
  i = i + 2
end
local visible = nil
local n_visible = tonumber(ARGV[i])
if n_visible >= 0 then
  visible = {}
  for j = i + 1, i + n_visible do visible[ARGV[j]] = true end
end
local record_key = kind == "run" and k_run or k_interrupt

local function keep(flat)
  local h = {}
  for j = 1, #flat, 2 do h[flat[j]] = flat[j + 1] end
  for _, pair in ipairs(wanted) do
    if h[pair[1]] ~= pair[2] then return false end
  end
  return visible == nil or (h.agent_id ~= nil and visible[h.agent_id] == true)
end

local out = {version, ""}
local kept, scanned, last = 0, 0, ""
local function finish(cursor)
  out[2] = cursor
  return out
end
-- the next ``batch`` entries past the bound, with their scores (flat)
local function range(index, batch)
  if desc then
    local hi = bound ~= "" and ("(" .. bound) or "+inf"
    return redis.call("ZREVRANGEBYSCORE", index, hi, "-inf", "WITHSCORES", "LIMIT", 0, batch)
  end
  local lo = bound ~= "" and ("(" .. bound) or "-inf"
  return redis.call("ZRANGEBYSCORE", index, lo, "+inf", "WITHSCORES", "LIMIT", 0, batch)
end

-- the same over the union of the indexes: the first ``batch`` of the union are among
-- the first ``batch`` of each; a member of several (same record, same score) once
local function union_range(batch)
  if #indexes == 1 then return range(indexes[1], batch) end
  local merged, seen = {}, {}
  for _, index in ipairs(indexes) do
    local rows = range(index, batch)
    for j = 1, #rows, 2 do
      if not seen[rows[j]] then
        seen[rows[j]] = true
        merged[#merged + 1] = {rows[j], rows[j + 1], tonumber(rows[j + 1])}
      end
    end
  end
  table.sort(merged, function(a, b)
    if desc then return a[3] > b[3] end
    return a[3] < b[3]
  end)
  local rows = {}
  for j = 1, math.min(batch, #merged) do
    rows[#rows + 1] = merged[j][1]
    rows[#rows + 1] = merged[j][2]
  end
  return rows
end

while kept <= limit and scanned < max_scan do
  local batch = limit + 1 - kept
  local rows = union_range(batch)
  if #rows == 0 then return finish("") end
  for j = 1, #rows, 2 do
    scanned = scanned + 1
    bound = rows[j + 1]
    local h = redis.call("HGETALL", record_key(rows[j]))
    if #h > 0 and keep(h) then
      -- one more exists past this page
      if kept == limit then return finish(last) end
      kept = kept + 1
      if kind == "run" then
        out[#out + 1] = {h, pending_ids(rows[j])}
      else
        out[#out + 1] = h
      end
      last = rows[j + 1]
    end
  end
  if #rows / 2 < batch then return finish("") end
end
return finish(bound)
"""
)

READS = {"run": RUN, "page": PAGE}
