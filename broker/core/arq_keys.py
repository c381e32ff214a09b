"""arq's keys under the broker's prefix, so deployments can share one Redis.

arq names its keys with module constants (``arq:job:<id>``, ``arq:result:<id>``,
``arq:in-progress:<id>``, ``arq:retry:<id>``, ``arq:abort``) that ``arq.connections``,
``arq.jobs`` and ``arq.worker`` import by name and read at each call. ``install``
rebinds those names, in every module that holds them, to the names in
``broker/core/keys.py``. This is the one place the broker reaches into arq's modules
outside ``worker/_arq.py``; the versions it was checked against are ``ARQ_CHECKED``
there, asserted by the tests.

The names are per process: one process serves one deployment (one
``BROKER_KEY_PREFIX``). The API (``queue_pool``) and the worker (``worker_kwargs``)
both install the prefix before their first job, so both sides name the same keys.
"""

from __future__ import annotations

import logging
from types import ModuleType

import arq.connections
import arq.constants
import arq.jobs
import arq.worker

from broker.core.keys import Keys

log = logging.getLogger("broker.core.arq_keys")

_MODULES: tuple[ModuleType, ...] = (arq.constants, arq.connections, arq.jobs, arq.worker)
_installed: str | None = None


def names(keys: Keys) -> dict[str, str]:
    """arq's constant name -> the broker's key name for it."""
    return {
        "job_key_prefix": keys.arq_job_prefix,
        "in_progress_key_prefix": keys.arq_in_progress_prefix,
        "result_key_prefix": keys.arq_result_prefix,
        "retry_key_prefix": keys.arq_retry_prefix,
        "abort_jobs_ss": keys.arq_abort,
        "default_queue_name": keys.queue,
    }


def install(keys: Keys) -> None:
    """Makes arq, in this process, name its keys under ``keys.prefix``."""
    global _installed
    if _installed == keys.prefix:
        return
    if _installed is not None:
        log.warning("arq's keys move from prefix %r to %r in this process", _installed, keys.prefix)
    for name, value in names(keys).items():
        if not hasattr(arq.constants, name):
            raise RuntimeError(f"arq no longer defines {name}; check broker/core/arq_keys.py")
        for module in _MODULES:
            if hasattr(module, name):
                setattr(module, name, value)
    _installed = keys.prefix
