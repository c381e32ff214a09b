"""Every Redis key name the broker uses, shared by the API and the worker.

A key spelled out anywhere else is a bug: add it here instead.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

# Key builders the store's Lua scripts use, generated from the methods below so that
# every name still has one definition: Lua name -> (method or property, arity).
_LUA_KEYS: dict[str, tuple[str, int]] = {
    "K_SEQ": ("seq", 0),
    "K_IVERSION": ("interrupts_version", 0),
    "K_DEADLINES": ("deadlines", 0),
    "K_RUNS": ("runs", 0),
    "K_RUNS_DUE": ("runs_due", 0),
    "K_EVENTS": ("events", 0),
    "k_interrupt": ("interrupt", 1),
    "k_istatus": ("interrupts_by_status", 1),
    "k_iagent": ("interrupts_by_agent", 2),
    "k_ithread": ("interrupts_by_thread", 2),
    "k_itype": ("interrupts_by_type", 2),
    "k_iassignee": ("interrupts_by_assignee", 2),
    "k_run_interrupts": ("run_interrupts", 1),
    "k_run_open": ("run_open", 1),
    "k_audit": ("audit", 1),
    "k_audit_decision": ("audit_decision", 1),
    "k_run": ("run", 1),
    "k_rstatus": ("runs_by_status", 1),
    "k_ragent": ("runs_by_agent", 1),
    "k_rthread": ("runs_by_thread", 1),
    "k_thread_active": ("thread_active_run", 1),
    "k_run_events": ("run_events", 1),
    "k_idem": ("idempotency", 2),
    "K_ENDED": ("ended_runs", 0),
    "K_SCRATCH": ("retention_scratch", 0),
    "k_gone_run": ("run_tombstone", 1),
    "k_gone_interrupt": ("interrupt_tombstone", 1),
    "k_thread_record": ("thread_record", 1),
    "K_THREAD_RECORDS": ("thread_records", 0),
}
_MARK = re.compile("\x00(\\d)\x00")


def _lua_str(text: str) -> str:
    return '"' + "".join(c if c.isalnum() or c in ":_-./" else f"\\{ord(c)}" for c in text) + '"'


@dataclass(frozen=True)
class Keys:
    prefix: str = "ib"

    # -- sequences and versions ------------------------------------------------
    @property
    def seq(self) -> str:
        """Monotonic counter; its values order every index (unique scores)."""
        return f"{self.prefix}:seq"

    @property
    def interrupts_version(self) -> str:
        """Bumped by every interrupt change; the ETag of GET /interrupts derives from it."""
        return f"{self.prefix}:interrupts:version"

    # -- interrupts -------------------------------------------------------------
    def interrupt(self, interrupt_id: str) -> str:
        return f"{self.prefix}:interrupt:{interrupt_id}"

    def interrupts_by_status(self, status: str) -> str:
        return f"{self.prefix}:interrupts:{status}"

    def interrupts_by_agent(self, status: str, agent_id: str) -> str:
        return f"{self.prefix}:interrupts:{status}:agent:{agent_id}"

    def interrupts_by_thread(self, status: str, thread_id: str) -> str:
        return f"{self.prefix}:interrupts:{status}:thread:{thread_id}"

    def interrupts_by_type(self, status: str, itype: str) -> str:
        return f"{self.prefix}:interrupts:{status}:type:{itype}"

    def interrupts_by_assignee(self, status: str, name: str) -> str:
        """The interrupts naming ``name`` (``user:…``, ``group:…``) among their assignees;
        only pending ones are indexed so (an interrupt leaves it in the step that moves it
        out of pending)."""
        return f"{self.prefix}:interrupts:{status}:assignee:{name}"

    def run_interrupts(self, run_id: str) -> str:
        """Every interrupt a run has raised, in order (for listing, never a hot path)."""
        return f"{self.prefix}:run:{run_id}:interrupts"

    def run_open(self, run_id: str) -> str:
        """The run's open interrupts: pending, or answered and not yet applied (by seq)."""
        return f"{self.prefix}:run:{run_id}:open"

    def idempotency(self, interrupt_id: str, key_digest: str) -> str:
        return f"{self.prefix}:idem:{interrupt_id}:{key_digest}"

    def run_idempotency(self, key_digest: str) -> str:
        """The response of a ``POST /runs`` made with an ``Idempotency-Key``."""
        return f"{self.prefix}:idem:runs:{key_digest}"

    def audit(self, interrupt_id: str) -> str:
        """List of every attempt to answer the interrupt, accepted or refused, oldest first."""
        return f"{self.prefix}:audit:{interrupt_id}"

    def audit_decision(self, interrupt_id: str) -> str:
        """The audit entry of the step that decided the interrupt (its accepted answer, or
        its deadline), kept apart so trimming the capped log never drops it."""
        return f"{self.prefix}:audit:{interrupt_id}:decision"

    @property
    def deadlines(self) -> str:
        """Sorted set of pending interrupts that expire, scored by deadline (ms)."""
        return f"{self.prefix}:deadlines"

    @property
    def expiry_lock(self) -> str:
        """Held by the one worker running the expiry pass at a time."""
        return f"{self.prefix}:lock:expiry"

    def link_used(self, nonce: str) -> str:
        """Set when an action link is used; it lives until the link would have expired."""
        return f"{self.prefix}:link:used:{nonce}"

    def slack_message(self, interrupt_id: str) -> str:
        """Hash of the Slack message asking the interrupt: its ``channel`` and ``ts``."""
        return f"{self.prefix}:slack:msg:{interrupt_id}"

    # -- webhooks -----------------------------------------------------------------
    @property
    def webhooks(self) -> str:
        """Hash of subscriptions managed over the API: id -> JSON."""
        return f"{self.prefix}:webhooks"

    @property
    def webhooks_version(self) -> str:
        """Changed with every save or delete of a managed subscription: "<ms>-<nonce>",
        the Redis time of the change first. Dispatchers read it instead of the hash."""
        return f"{self.prefix}:webhooks:version"

    def webhook_deliveries(self, subscription_id: str) -> str:
        """Capped list of a subscription's delivery attempts, newest first."""
        return f"{self.prefix}:webhook:{subscription_id}:deliveries"

    @property
    def webhook_group(self) -> str:
        """Consumer group on the global event stream: each event is dispatched once. It
        exists only while some subscription is enabled."""
        return f"{self.prefix}:webhooks:dispatch"

    # -- runs ---------------------------------------------------------------------
    def run(self, run_id: str) -> str:
        return f"{self.prefix}:run:{run_id}"

    @property
    def runs(self) -> str:
        return f"{self.prefix}:runs"

    def runs_by_status(self, status: str) -> str:
        return f"{self.prefix}:runs:status:{status}"

    def runs_by_agent(self, agent_id: str) -> str:
        return f"{self.prefix}:runs:agent:{agent_id}"

    def runs_by_thread(self, thread_id: str) -> str:
        return f"{self.prefix}:runs:thread:{thread_id}"

    def thread_active_run(self, thread_id: str) -> str:
        """The one run that may be active (queued, running, interrupted) on a thread."""
        return f"{self.prefix}:thread:{thread_id}:active"

    def thread_record(self, thread_id: str) -> str:
        """A thread made before any run (LangGraph's ``POST /threads``): its metadata."""
        return f"{self.prefix}:thread:{thread_id}:record"

    @property
    def thread_records(self) -> str:
        """The threads made before any run, by creation time (their searches)."""
        return f"{self.prefix}:threads:records"

    def thread_lease(self, thread_id: str) -> str:
        """The lease of the worker executing the graph on this thread: its token
        (``<worker id>|<nonce>``), renewed while it runs, lapsing if it stops."""
        return f"{self.prefix}:lease:thread:{thread_id}"

    def thread_fence(self, thread_id: str) -> str:
        """The token of the last holder to take the thread's lease; the attempt's writes
        check it (broker/core/fence.py). Outlives the lease, so a holder whose lease
        lapsed can tell whether another one took the thread meanwhile."""
        return f"{self.prefix}:lease:thread:{thread_id}:fence"

    @property
    def runs_due(self) -> str:
        """Runs with unfinished work: queued, or holding unapplied answers (score: ms)."""
        return f"{self.prefix}:runs:due"

    @property
    def reconciler_lock(self) -> str:
        """Held by the one worker running the reconciler pass at a time."""
        return f"{self.prefix}:lock:reconciler"

    # -- retention -----------------------------------------------------------------
    @property
    def ended_runs(self) -> str:
        """Sorted set of ended runs scored by when their records expire (ms); each member
        is the JSON of the index entries the retention sweep drops then."""
        return f"{self.prefix}:retention:ended"

    def run_tombstone(self, run_id: str) -> str:
        """Left by an ended run (value: its agent) to outlive its records: reads say 410."""
        return f"{self.prefix}:gone:run:{run_id}"

    def interrupt_tombstone(self, interrupt_id: str) -> str:
        """As run_tombstone, for each interrupt of an ended run."""
        return f"{self.prefix}:gone:interrupt:{interrupt_id}"

    @property
    def retention_scan(self) -> str:
        """Hash: ended-run status -> seq where the backfill of pre-retention runs resumes."""
        return f"{self.prefix}:retention:scan"

    @property
    def retention_scratch(self) -> str:
        """Where the sweep rebuilds an index that shrank (it exists only inside the script)."""
        return f"{self.prefix}:retention:scratch"

    @property
    def retention_lock(self) -> str:
        """Held by the one worker running the retention sweep at a time."""
        return f"{self.prefix}:lock:retention"

    # -- events -------------------------------------------------------------------
    @property
    def events(self) -> str:
        return f"{self.prefix}:events"

    def run_events(self, run_id: str) -> str:
        """The run's event log (broker/core/runlog.py), a list."""
        return f"{self.prefix}:events:runlog:{run_id}"

    # -- workers and queue -----------------------------------------------------------
    @property
    def queue(self) -> str:
        return f"{self.prefix}:queue"

    # arq's own keys, under the prefix too (broker/core/arq_keys.py puts them there):
    # job ids are appended to the *_prefix names.
    @property
    def arq_job_prefix(self) -> str:
        return f"{self.prefix}:arq:job:"

    @property
    def arq_in_progress_prefix(self) -> str:
        return f"{self.prefix}:arq:in-progress:"

    @property
    def arq_result_prefix(self) -> str:
        return f"{self.prefix}:arq:result:"

    @property
    def arq_retry_prefix(self) -> str:
        return f"{self.prefix}:arq:retry:"

    @property
    def arq_abort(self) -> str:
        """arq's sorted set of job ids to abort."""
        return f"{self.prefix}:arq:abort"

    @property
    def wake_channel(self) -> str:
        """Pub/sub channel that wakes idle workers as soon as a job is queued."""
        return f"{self.prefix}:wake"

    @property
    def workers(self) -> str:
        """Sorted set of worker ids scored by their last heartbeat (ms)."""
        return f"{self.prefix}:workers"

    # -- checkpoints ------------------------------------------------------------------
    def checkpoint_prefix(self) -> str:
        return f"{self.prefix}:cp"

    @staticmethod
    def _cp_part(value: str) -> str:
        # Thread ids, namespaces and run ids may contain ':'; escaping it (and '%', the
        # escape character) keeps every checkpoint key name unambiguous.
        return value.replace("%", "%25").replace(":", "%3A")

    def _cp_thread(self, thread_id: str) -> str:
        return f"{self.checkpoint_prefix()}:t:{self._cp_part(thread_id)}"

    @property
    def checkpoint_threads(self) -> str:
        """Sorted set of thread ids with checkpoints, scored by expiry deadline (ms) or +inf."""
        return f"{self.checkpoint_prefix()}:threads"

    def checkpoint_ids(self, thread_id: str) -> str:
        """Sorted set of the thread's checkpoints, ``<namespace>NUL<id>``, all scored 0 so
        they sort by namespace, then by id (uuid6: by time)."""
        return f"{self._cp_thread(thread_id)}:cps"

    def checkpoint_data(self, thread_id: str) -> str:
        """Hash of the thread's checkpoint rows, writes and channel values (field names in
        broker/core/saver/_codec.py)."""
        return f"{self._cp_thread(thread_id)}:data"

    def checkpoint_thread_runs(self, thread_id: str) -> str:
        """Set of the run indexes (checkpoint_run) the thread's checkpoints are listed in."""
        return f"{self._cp_thread(thread_id)}:runs"

    def checkpoint_legacy_keys(self, thread_id: str) -> str:
        """The key index of the checkpoint layout of 0.1.0 (one key per checkpoint):
        only read to tell such a thread apart, and deleted with it."""
        return f"{self._cp_thread(thread_id)}:keys"

    def checkpoint_run(self, run_id: str) -> str:
        """Set of (thread id, namespace, checkpoint id) written by one run."""
        return f"{self.checkpoint_prefix()}:run:{self._cp_part(run_id)}"

    def lua(self) -> str:
        """Lua definitions of the key names the store's scripts build (see _LUA_KEYS)."""
        lines = []
        for lua_name, (attr, arity) in _LUA_KEYS.items():
            if arity == 0:
                lines.append(f"local {lua_name} = {_lua_str(getattr(self, attr))}")
                continue
            text = getattr(self, attr)(*(f"\x00{i}\x00" for i in range(arity)))
            parts = _MARK.split(text)
            # split() alternates literal text and argument numbers
            expr = " .. ".join(
                _lua_str(part) if n % 2 == 0 else f"a{part}"
                for n, part in enumerate(parts)
                if part or n % 2
            )
            args = ", ".join(f"a{i}" for i in range(arity))
            lines.append(f"local function {lua_name}({args}) return {expr} end")
        return "\n".join(lines)
