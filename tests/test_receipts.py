"""Signed decision receipts end to end (docs/design.md, "Signed decision receipts"): real
API and worker processes, receipts checked with PyJWT against the live JWK Set and with
a second JOSE library (joserfc), and tool_approval's send_email refusing what no receipt
approves."""

from __future__ import annotations

import base64
import json
import os
import uuid
import warnings
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from joserfc import jwt as jose_jwt
from joserfc.errors import SecurityWarning
from joserfc.jwk import KeySet

from agent import receipts as agent_receipts
from agent.tool_approval import send_email
from broker.core import audit
from tests.flow import answer, next_interrupt, start, wait_status
from tests.graphs import EXPIRY_DEFAULT
from tests.harness import Broker, delete_prefix

pytestmark = pytest.mark.slow
ISSUER = "http://127.0.0.1:8000"  # the harness leaves BROKER_PUBLIC_URL at its default
EMAIL = {
    "messages": [{"role": "user", "content": "Send an email to bob@example.com about the launch"}]
}


def jwks_url(base: str) -> str:
    return f"{base}/.well-known/jwks.json"


def pyjwt_claims(base: str, receipt: str) -> dict[str, Any]:
    """The receipt checked as any relying party would: PyJWT's PyJWKClient on the live set."""
    key = jwt.PyJWKClient(jwks_url(base), cache_jwk_set=False).get_signing_key_from_jwt(receipt)
    claims: dict[str, Any] = jwt.decode(
        receipt, key, algorithms=["EdDSA"], issuer=ISSUER, options={"require": ["iat", "sub"]}
    )
    return claims


def joserfc_claims(base: str, receipt: str) -> dict[str, Any]:
    """The same receipt checked by another library, with the set fetched over HTTP."""
    keys = KeySet.import_key_set(httpx.get(jwks_url(base)).json())
    with warnings.catch_warnings():
        # joserfc notes that RFC 9864 names a fully-specified "Ed25519" algorithm too
        warnings.simplefilter("ignore", SecurityWarning)
        token = jose_jwt.decode(receipt, keys, algorithms=["EdDSA"])
    assert token.header["typ"] == "decision+jwt"
    return dict(token.claims)


def seed() -> str:
    return base64.urlsafe_b64encode(os.urandom(32)).decode().rstrip("=")


def test_jwks_is_open_cacheable_and_lists_the_signing_key(api: httpx.Client) -> None:
    got = httpx.get(jwks_url(str(api.base_url)))
    assert got.status_code == 200
    assert got.headers["cache-control"] == "public, max-age=300"
    [key] = got.json()["keys"]
    assert {k: key[k] for k in ("kty", "crv", "kid", "use", "alg")} == {
        "kty": "OKP",
        "crv": "Ed25519",
        "kid": "test",
        "use": "sig",
        "alg": "EdDSA",
    }
    assert "d" not in key  # the public half only


def test_a_resolution_carries_a_receipt_that_two_libraries_verify(api: httpx.Client) -> None:
    run = start(api, "naming", {"messages": [{"role": "user", "content": "hello"}]})
    approval = next_interrupt(api, run["run_id"])

    answered = answer(api, approval["id"], True, resolved_by="alice")

    resolution = answered["resolution"]
    receipt = resolution["receipt"]
    header = jwt.get_unverified_header(receipt)
    assert header == {"alg": "EdDSA", "kid": "test", "typ": "decision+jwt"}
    base = str(api.base_url)
    claims = pyjwt_claims(base, receipt)
    assert joserfc_claims(base, receipt) == claims
    [accepted] = api.get(f"/interrupts/{approval['id']}/audit").json()["items"]
    assert claims == {
        "iss": ISSUER,
        "sub": approval["id"],
        "iat": int(datetime.fromisoformat(resolution["resolved_at"]).timestamp()),
        "run_id": run["run_id"],
        "thread_id": run["thread_id"],
        "agent_id": "naming",
        "fingerprint": approval.get("fingerprint", ""),
        "answer_sha256": accepted["payload_sha256"],
        "actions_sha256": [],
        "by": {"person": None, "key_id": resolution["key_id"], "resolved_by": "alice"},
        "votes": [],
        "channel": "rest",
    }
    assert accepted["payload_sha256"] == agent_receipts.canonical_sha256(True)
    # the stored resolution is the one answered with
    stored = api.get(f"/interrupts/{approval['id']}").json()["resolution"]
    assert stored["receipt"] == receipt


def test_a_bulk_answer_carries_a_receipt(api: httpx.Client) -> None:
    run = start(api, "naming", {"messages": [{"role": "user", "content": "hello"}]})
    approval = next_interrupt(api, run["run_id"])

    got = api.post("/interrupts/resolve", json={"ids": [approval["id"]], "value": True}).json()

    [result] = got["results"]
    claims = pyjwt_claims(str(api.base_url), result["interrupt"]["resolution"]["receipt"])
    assert (claims["sub"], claims["channel"]) == (approval["id"], "rest")
    assert claims["answer_sha256"] == audit.payload_sha256(True)


def test_an_expiry_default_carries_a_receipt(api: httpx.Client) -> None:
    run = start(api, "expiring", {})
    target = next_interrupt(api, run["run_id"])
    wait_status(api, run["run_id"], "succeeded", "failed")

    expired = api.get(f"/interrupts/{target['id']}").json()

    assert expired["status"] == "expired"
    claims = pyjwt_claims(str(api.base_url), expired["resolution"]["receipt"])
    assert claims["sub"] == target["id"]
    assert claims["channel"] == "expiry"
    assert claims["by"] == {"person": None, "key_id": None, "resolved_by": "expiry"}
    assert claims["answer_sha256"] == audit.payload_sha256(EXPIRY_DEFAULT)


@pytest.fixture(scope="module")
def approved_email(api_module: httpx.Client) -> dict[str, Any]:
    """A real tool review approved through the API and run by the real worker."""
    run = start(api_module, "tool_approval", EMAIL)
    review = next_interrupt(api_module, run["run_id"])
    answered = answer(api_module, review["id"], {"decisions": [{"type": "approve"}]})
    done = wait_status(api_module, run["run_id"], "succeeded", "failed")
    return {"run": run, "review": review, "resolution": answered["resolution"], "done": done}


@pytest.fixture(scope="module")
def api_module(broker: Broker) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=broker.url, timeout=30) as client:
        yield client


def test_tool_approval_sends_with_the_receipt_of_its_approval(
    approved_email: dict[str, Any], api_module: httpx.Client
) -> None:
    done, review = approved_email["done"], approved_email["review"]
    assert done["status"] == "succeeded", done
    [tool] = [m for m in done["output"]["messages"] if m["type"] == "tool"]
    assert tool["content"].startswith("Email sent to bob@example.com"), tool
    [action] = review["value"]["action_requests"]
    claims = pyjwt_claims(str(api_module.base_url), approved_email["resolution"]["receipt"])
    assert claims["actions_sha256"] == [agent_receipts.action_sha256("send_email", action["args"])]


def tool_config(
    approved: dict[str, Any], base: str, receipt: str, thread_id: str | None = None
) -> dict[str, Any]:
    """The config a resumed run's tool gets: the receipt by interrupt id, and the keys."""
    return {
        "configurable": {
            "thread_id": thread_id or approved["run"]["thread_id"],
            agent_receipts.CONFIG_RECEIPTS: {approved["review"]["interrupt_id"]: receipt},
            agent_receipts.CONFIG_JWKS: httpx.get(jwks_url(base)).json(),
        }
    }


def forge(claims: dict[str, Any], kid: str = "test") -> str:
    """A receipt with these claims signed by a key the broker never had."""
    headers = {"kid": kid, "typ": "decision+jwt"}
    return jwt.encode(claims, Ed25519PrivateKey.generate(), algorithm="EdDSA", headers=headers)


def test_send_email_runs_only_with_a_valid_receipt_for_its_exact_args(
    approved_email: dict[str, Any], api_module: httpx.Client
) -> None:
    base = str(api_module.base_url)
    receipt = approved_email["resolution"]["receipt"]
    args = approved_email["review"]["value"]["action_requests"][0]["args"]
    claims = pyjwt_claims(base, receipt)

    def send(receipt: str, args: dict[str, Any] = args, thread_id: str | None = None) -> str:
        config = tool_config(approved_email, base, receipt, thread_id)
        return str(send_email.invoke(args, config=config))

    assert send(receipt).startswith("Email sent to bob@example.com")
    # other arguments than the ones approved
    other = {**args, "to": "mallory@example.com"}
    assert send(receipt, other).startswith("Email not sent: no valid receipt approves send_email")
    assert "Email sent" not in send(receipt, {**args, "body": args["body"] + "!"})
    # forged: signed by an unknown key, under the real kid and under another
    assert "does not verify" in send(forge(claims))
    assert "unknown key" in send(forge(claims, kid="forger"))
    # tampered: the claims edited to name other arguments, the signature kept
    head, _, sig = receipt.split(".")
    edited = {**claims, "actions_sha256": [agent_receipts.action_sha256("send_email", other)]}
    body = base64.urlsafe_b64encode(json.dumps(edited).encode()).decode().rstrip("=")
    assert "does not verify" in send(f"{head}.{body}.{sig}", other)
    # the real receipt on another thread
    assert "another thread_id" in send(receipt, thread_id=uuid.uuid4().hex)


def test_send_email_refuses_a_receipt_of_another_interrupt(
    approved_email: dict[str, Any], api_module: httpx.Client
) -> None:
    run = start(api_module, "naming", {"messages": [{"role": "user", "content": "hi"}]})
    approval = next_interrupt(api_module, run["run_id"])
    other = answer(api_module, approval["id"], True)["resolution"]["receipt"]
    args = approved_email["review"]["value"]["action_requests"][0]["args"]
    base = str(api_module.base_url)

    config = tool_config(approved_email, base, other, thread_id=run["thread_id"])
    result = str(send_email.invoke(args, config=config))

    assert result.startswith("Email not sent"), result
    assert "other arguments" in result


def test_send_email_without_receipt_keys_refuses_unless_told_to_warn(
    approved_email: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    args = approved_email["review"]["value"]["action_requests"][0]["args"]
    config = {"configurable": {"thread_id": approved_email["run"]["thread_id"]}}

    assert "signs no receipts" in str(send_email.invoke(args, config=config))
    monkeypatch.setenv("TOOL_APPROVAL_RECEIPTS", "warn")
    assert str(send_email.invoke(args, config=config)).startswith("Email sent")


def test_rotation_keeps_receipts_of_the_retired_key_verifiable(
    redis_url: str, tmp_path: Path
) -> None:
    prefix = f"ibt{uuid.uuid4().hex[:10]}"
    old, new = seed(), seed()
    before = Broker(
        redis_url,
        prefix,
        tmp_path,
        BROKER_RECEIPT_KEYS=json.dumps([{"kid": "k1", "private_key": old}]),
    )
    rotated = json.dumps(
        [
            {"kid": "k1", "private_key": old, "active": False},
            {"kid": "k2", "private_key": new, "active": True},
        ]
    )
    after = Broker(redis_url, prefix, tmp_path, BROKER_RECEIPT_KEYS=rotated)
    try:
        before.start_worker()
        before.start_api()
        before.wait_ready()
        with httpx.Client(base_url=before.url, timeout=30) as client:
            run = start(client, "naming", {"messages": [{"role": "user", "content": "hello"}]})
            approval = next_interrupt(client, run["run_id"])
            first = answer(client, approval["id"], True)["resolution"]["receipt"]
            ask = next_interrupt(client, run["run_id"], after=approval["id"])
        before.stop()

        after.start_worker()
        after.start_api()
        after.wait_ready()
        with httpx.Client(base_url=after.url, timeout=30) as client:
            kept = client.get(f"/interrupts/{approval['id']}").json()["resolution"]["receipt"]
            second = answer(client, ask["id"], "Ada")["resolution"]["receipt"]
            published = client.get("/.well-known/jwks.json").json()["keys"]
    finally:
        before.stop()
        after.stop()
        delete_prefix(redis_url, prefix)

    assert [k["kid"] for k in published] == ["k1", "k2"]
    assert kept == first and jwt.get_unverified_header(first)["kid"] == "k1"
    assert jwt.get_unverified_header(second)["kid"] == "k2"
    jwks = {"keys": published}
    assert agent_receipts.verify(first, jwks=jwks)["sub"] == approval["id"]
    assert agent_receipts.verify(second, jwks=jwks)["sub"] == ask["id"]
