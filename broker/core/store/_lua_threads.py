"""The Lua of threads made before any run (LangGraph's ``POST /threads``).

A made thread is a small record of its metadata (and, when it names one, its graph),
indexed by creation time for thread search. It lives as long as a thread's checkpoints
do (``BROKER_CHECKPOINT_TTL_S``); the retention sweep drops the index entries of expired
ones.
"""

from __future__ import annotations

# make thread. ARGV: 2 thread id, 3 its fields (a JSON object of strings), 4 its TTL in
# ms ('' for none). Returns its creation time (NOW) when made, 0 when the thread exists
# (a record, or runs). Touches: the thread's record and the made-threads index.
MAKE_THREAD = """
local tid = ARGV[2]
local key = k_thread_record(tid)
if redis.call('EXISTS', key, k_rthread(tid)) > 0 then return 0 end
redis.call('HSET', key, 'created_ms', NOW, 'updated_ms', NOW)
for name, value in pairs(cjson.decode(ARGV[3])) do redis.call('HSET', key, name, value) end
if ARGV[4] ~= '' then redis.call('PEXPIRE', key, ARGV[4]) end
redis.call('ZADD', K_THREAD_RECORDS, NOW, tid)
return tonumber(NOW)
"""

THREADS = {"make_thread": MAKE_THREAD}
