"""Receipt keys and claims (docs/design.md, "Signed decision receipts"): what the start-up
check refuses, the built-in key of ``broker dev``, which tool calls an answer approves,
and that the broker and the agent helper hash alike."""

from __future__ import annotations

import base64
import json
import logging
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from agent import receipts as agent_receipts
from broker.core import audit, config, receipts
from broker.core.records import InterruptRecord, InterruptStatus
from broker.core.settings import Settings

SEED = base64.urlsafe_b64encode(bytes(range(32))).decode().rstrip("=")


def pem(key: Any) -> str:
    return str(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ).decode()
    )


def settings(keys: Any = None, **extra: Any) -> Settings:
    return Settings(redis_url="redis://127.0.0.1:6379/0", receipt_keys=keys, **extra)


def test_a_pem_and_a_seed_both_load_and_a_lone_key_is_active() -> None:
    for private in (pem(Ed25519PrivateKey.generate()), SEED):
        keys = receipts.load(settings([{"kid": "one", "private_key": private}]))
        assert keys.signer is not None and keys.signer.kid == "one"


def test_the_active_key_signs_and_every_key_is_published() -> None:
    keys = receipts.load(
        settings(
            [
                {"kid": "old", "private_key": pem(Ed25519PrivateKey.generate())},
                {"kid": "new", "private_key": SEED, "active": True},
            ]
        )
    )
    token = keys.sign({"iss": keys.issuer, "sub": "x", "iat": 1})
    assert token is not None
    assert jwt.get_unverified_header(token)["kid"] == "new"
    assert [k["kid"] for k in keys.jwks()["keys"]] == ["old", "new"]
    assert keys.verify(token)["sub"] == "x"


@pytest.mark.parametrize(
    ("entries", "message"),
    [
        (
            [{"kid": "a", "private_key": "-----BEGIN PRIVATE KEY-----\nnope\n"}],
            "not a readable PEM",
        ),
        ([{"kid": "a", "private_key": "c2hvcnQ"}], "32-byte Ed25519 seed, not 5 bytes"),
        ([{"kid": "a", "private_key": "!!not base64!!"}], "neither a PEM nor base64url"),
        ([{"kid": "a"}], "needs private_key"),
        ([{"private_key": SEED}], "needs a kid"),
        (["a"], "must be an object"),
        ([{"kid": "a", "private_key": SEED, "active": "yes"}], "active must be true or false"),
        (
            [{"kid": "a", "private_key": SEED}, {"kid": "a", "private_key": SEED, "active": True}],
            "kid 'a' appears twice",
        ),
        (
            [
                {"kid": "a", "private_key": SEED, "active": True},
                {"kid": "b", "private_key": SEED, "active": True},
            ],
            "2 receipt keys are active",
        ),
        (
            [{"kid": "a", "private_key": SEED}, {"kid": "b", "private_key": SEED}],
            "0 receipt keys are active",
        ),
    ],
)
def test_unusable_keys_are_refused_at_start(entries: list[Any], message: str) -> None:
    with pytest.raises(receipts.ReceiptConfigError, match=message):
        config.check(settings(entries, auth="off"), "worker")


def test_a_key_of_another_kind_is_refused() -> None:
    rsa_pem = pem(rsa.generate_private_key(public_exponent=65537, key_size=2048))
    with pytest.raises(receipts.ReceiptConfigError, match="not an Ed25519 key"):
        receipts.load(settings([{"kid": "r", "private_key": rsa_pem}]))


def test_keys_load_from_a_file(tmp_path: Path) -> None:
    path = tmp_path / "receipt-keys.json"
    path.write_text(json.dumps([{"kid": "f", "private_key": SEED}]))
    keys = receipts.load(settings(receipt_keys_file=str(path)))
    assert keys.signer is not None and keys.signer.kid == "f"
    with pytest.raises(receipts.ReceiptConfigError, match="BROKER_RECEIPT_KEYS_FILE"):
        receipts.load(settings(receipt_keys_file=str(tmp_path / "missing.json")))


def test_dev_signs_with_its_built_in_key_and_production_without_keys_warns(
    caplog: pytest.LogCaptureFixture,
) -> None:
    dev = receipts.load(settings(dev=True))
    assert dev.signer is not None and dev.signer.kid == receipts.DEV_KID
    off = receipts.load(settings())
    assert off.signer is None and off.jwks() == {"keys": []} and off.sign({"sub": "x"}) is None
    with caplog.at_level(logging.WARNING, logger="broker.core.config"):
        config.check(settings(auth="off"), "worker")
    assert "decision receipts are off" in caplog.text


REVIEW = {
    "action_requests": [
        {"name": "send_email", "args": {"to": "a@example.com"}, "description": "d"},
        {"name": "send_email", "args": {"to": "b@example.com"}, "description": "d"},
        {"name": "send_email", "args": {"to": "c@example.com"}, "description": "d"},
    ],
    "review_configs": [{"action_name": "send_email", "allowed_decisions": ["approve", "edit"]}],
}


def test_the_answer_approves_the_calls_it_lets_run_as_they_will_run() -> None:
    edited = {"name": "send_email", "args": {"to": "z@example.com"}}
    answer = {
        "decisions": [
            {"type": "approve"},
            {"type": "reject", "message": "no"},
            {"type": "edit", "edited_action": edited},
        ]
    }
    assert receipts.approved_actions(REVIEW, answer) == [
        agent_receipts.action_sha256("send_email", {"to": "a@example.com"}),
        agent_receipts.action_sha256("send_email", {"to": "z@example.com"}),
    ]
    one = {"type": "tool_approval", "tool_call_id": "c1", "name": "send_email", "args": {"to": "q"}}
    assert receipts.approved_actions(one, {"type": "approve"}) == [
        agent_receipts.action_sha256("send_email", {"to": "q"})
    ]
    assert receipts.approved_actions(one, {"type": "reject"}) == []
    assert receipts.approved_actions({"type": "approval"}, True) == []


@pytest.mark.parametrize(
    "value", [True, "Ada", {"b": [1, 2.5, None], "a": "é ✓"}, {"decisions": [{"type": "approve"}]}]
)
def test_the_broker_and_the_agent_hash_answers_alike(value: Any) -> None:
    assert agent_receipts.canonical_sha256(value) == audit.payload_sha256(value)


def test_claims_name_the_interrupt_the_answer_and_who_gave_it() -> None:
    h = InterruptRecord(
        id="i1",
        lg_id="lg1",
        run_id="r1",
        thread_id="t1",
        agent_id="a1",
        status=InterruptStatus.PENDING,
        value=REVIEW,
        fingerprint="fp",
    )
    person = {"sub": "ada", "iss": "https://id", "email": "ada@example.com", "name": "Ada"}
    resolution = {
        "value": {"decisions": [{"type": "approve"}] * 3},
        "resolved_by": None,
        "channel": "agui",
        "key_id": None,
        "person": person,
    }
    claims = receipts.claims(h, resolution, 1_700_000_000_999, "https://broker")
    assert claims["iat"] == 1_700_000_000
    assert claims["fingerprint"] == "fp"
    assert claims["by"] == {"person": person, "key_id": None, "resolved_by": None}
    assert claims["channel"] == "agui"
    assert len(claims["actions_sha256"]) == 3
