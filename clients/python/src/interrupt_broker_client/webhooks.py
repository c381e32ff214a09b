"""Checking a webhook delivery of the broker: Standard Webhooks signatures.

The broker signs ``{webhook-id}.{webhook-timestamp}.{body}`` with HMAC-SHA256 under
the subscription's secret (``whsec_`` and base64 of the key) and sends
``webhook-signature: v1,<base64>`` (several, space-separated, while a secret rotates).
A receiver checks the signature over the exact bytes it got, and that the timestamp is
recent, so a captured delivery cannot be replayed later.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import time
from collections.abc import Mapping
from typing import Any

TOLERANCE_S = 5 * 60


class WebhookVerificationError(Exception):
    """The delivery is not one the holder of the secret signed, or it is too old."""


def _key(secret: str) -> bytes:
    body = secret.removeprefix("whsec_")
    try:
        return base64.b64decode(body + "=" * (-len(body) % 4), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ValueError("a webhook secret is `whsec_` followed by base64") from exc


def verify_webhook(
    secret: str,
    body: str | bytes,
    headers: Mapping[str, str],
    *,
    tolerance_s: float = TOLERANCE_S,
    now: float | None = None,
) -> dict[str, Any]:
    """The delivery's JSON payload once its signature and timestamp check out; raises
    ``WebhookVerificationError`` otherwise. ``body`` is the raw body as received."""
    lower = {k.lower(): v for k, v in headers.items()}
    msg_id = lower.get("webhook-id")
    stamp = lower.get("webhook-timestamp")
    signatures = lower.get("webhook-signature")
    if not (msg_id and stamp and signatures):
        raise WebhookVerificationError("missing webhook-id, -timestamp or -signature")
    try:
        sent = int(stamp)
    except ValueError as exc:
        raise WebhookVerificationError("webhook-timestamp is not a number") from exc
    if abs((time.time() if now is None else now) - sent) > tolerance_s:
        raise WebhookVerificationError("the delivery's timestamp is too old or too new")
    raw = body.encode() if isinstance(body, str) else body
    content = f"{msg_id}.{sent}.".encode() + raw
    expected = base64.b64encode(hmac.new(_key(secret), content, hashlib.sha256).digest())
    for given in signatures.split(" "):
        version, _, signature = given.partition(",")
        if version == "v1" and hmac.compare_digest(signature.encode(), expected):
            payload: dict[str, Any] = json.loads(raw)
            return payload
    raise WebhookVerificationError("no signature matches")
