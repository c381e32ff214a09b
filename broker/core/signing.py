"""Standard Webhooks signatures (https://www.standardwebhooks.com).

The signed content is ``{webhook-id}.{webhook-timestamp}.{body}``; the signature is the
base64 HMAC-SHA256 of it under the secret's bytes, sent as ``webhook-signature:
v1,<signature>``. Secrets are ``whsec_`` followed by base64 of the key bytes.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets

from broker.core.secret import weakness

PREFIX = "whsec_"
MIN_KEY_BYTES = 24


class WebhookSecretError(ValueError):
    """A webhook secret that is malformed, or too weak outside dev mode."""


def new_secret() -> str:
    return PREFIX + base64.b64encode(secrets.token_bytes(32)).decode()


def key_bytes(secret: str) -> bytes:
    body = secret.removeprefix(PREFIX)
    try:
        return base64.b64decode(body + "=" * (-len(body) % 4), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise WebhookSecretError(
            "a webhook secret is `whsec_` followed by base64; omit it to have one made"
        ) from exc


def check_secret(secret: str, *, dev: bool) -> None:
    """Raises unless ``secret`` decodes, and (outside dev) is long and random enough."""
    if not secret.startswith(PREFIX):
        raise WebhookSecretError("a webhook secret starts with `whsec_`; omit it to have one made")
    key = key_bytes(secret)
    problem = weakness(key, min_bytes=MIN_KEY_BYTES)
    if problem and not dev:
        raise WebhookSecretError(f"this webhook secret is refused: {problem}")


def sign(secret: str, msg_id: str, timestamp: int, body: str) -> str:
    content = f"{msg_id}.{timestamp}.{body}".encode()
    digest = hmac.new(key_bytes(secret), content, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def headers(secret: str, msg_id: str, timestamp: int, body: str) -> dict[str, str]:
    """The three Standard Webhooks headers for one delivery attempt."""
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": sign(secret, msg_id, timestamp, body),
    }
