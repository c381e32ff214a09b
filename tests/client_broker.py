"""The broker the client tests (Python, tests/test_python_client*.py; TypeScript,
tests/test_ts_client.py) run against: webhooks for new interrupts of ``counter``,
action links, and an undo window on ``expiring_later``."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

from broker.core import signing
from tests.harness import Broker

UNDO_AGENT = "expiring_later"


def client_broker(
    redis_url: str, workdir: Path, hook_id: str, hook_url: str, secret: str
) -> Broker:
    """The broker, not yet started; ``hook_url`` receives its webhooks, signed with
    ``secret``."""
    hook = {
        "id": hook_id,
        "url": hook_url,
        "secret": secret,
        "events": ["interrupt.created"],
        "agents": ["counter"],
    }
    return Broker(
        redis_url,
        f"ibt{uuid.uuid4().hex[:10]}",
        workdir,
        BROKER_WEBHOOK_ALLOW_PRIVATE="1",
        BROKER_WEBHOOKS=json.dumps([hook]),
        BROKER_LINK_SECRET=signing.new_secret(),
        BROKER_PUBLIC_URL="https://broker.example.test",
        BROKER_UNDO=json.dumps([{"agent": UNDO_AGENT, "undo_s": 120}]),
    )
