"""The worker's use of arq (worker/_arq.py): the versions it was checked against, and
the wake-up that starts a job without waiting out arq's poll delay."""

from __future__ import annotations

import asyncio
import inspect
from pathlib import Path

import arq
import httpx
import pytest
from arq.worker import Worker

from tests.flow import next_interrupt, start, wait_status
from tests.harness import Broker
from worker._arq import ARQ_CHECKED


def test_arq_is_a_version_the_worker_was_checked_against() -> None:
    assert ".".join(arq.VERSION.split(".")[:2]) in ARQ_CHECKED
    # the one private method the wake-up calls, with the signature it calls it with
    params = inspect.signature(Worker._poll_iteration).parameters
    assert list(params) == ["self"]
    # and the ones the outage handling overrides, with the attributes they use
    assert list(inspect.signature(Worker.start_jobs).parameters) == ["self", "job_ids"]
    assert list(inspect.signature(Worker.run_job).parameters) == ["self", "job_id", "score"]
    assert list(inspect.signature(Worker._cancel_aborted_jobs).parameters) == ["self"]
    init = inspect.getsource(Worker.__init__)
    for attr in (
        "self.sem",
        "self.job_counter",
        "self.in_progress_timeout_s",
        "self.tasks",
        "self.job_tasks",
        "self.aborting_tasks",
    ):
        assert attr in init, attr
    # the job's own start drops a job asked to stop before it started
    assert "abort_jobs_ss" in inspect.getsource(Worker.run_job)
    assert "_release_sem_dec_counter_on_complete" in dir(Worker)


@pytest.mark.slow
def test_a_job_starts_on_the_wake_channel_not_the_poll(redis_url: str, tmp_path: Path) -> None:
    # arq would next poll in an hour: only the wake-up can start these jobs
    broker = Broker(redis_url, "ibtwake", tmp_path, BROKER_POLL_DELAY_S="3600")
    with broker.serving() as b, httpx.Client(base_url=b.url, timeout=30) as api:
        for _ in range(3):
            run = start(api, "naming", {"messages": [{"role": "user", "content": "hi"}]})
            assert next_interrupt(api, run["run_id"])["type"] == "approval"


@pytest.mark.slow
def test_jobs_queued_while_a_poll_runs_are_started_by_the_wake_up(
    redis_url: str, tmp_path: Path
) -> None:
    # arq would next poll in an hour. Runs queued at once wake the worker while it is
    # still polling for the first ones; a wake-up it dropped then would leave a run
    # queued for that hour.
    broker = Broker(redis_url, "ibtwake2", tmp_path, BROKER_POLL_DELAY_S="3600")
    with broker.serving() as b:

        async def burst() -> list[str]:
            async with httpx.AsyncClient(base_url=b.url, timeout=30) as api:
                started = await asyncio.gather(
                    *(
                        api.post("/runs", json={"agent_id": "counter", "input": {}})
                        for _ in range(30)
                    )
                )
                return [r.json()["run_id"] for r in started]

        run_ids = asyncio.run(burst())
        with httpx.Client(base_url=b.url, timeout=30) as api:
            for run_id in run_ids:
                wait_status(api, run_id, "interrupted")
