"""People: access tokens from a real OpenID provider (the npm oidc-provider) answer
interrupts, and every token the provider did not issue for the broker is refused.

A real provider (tests/oidc.py), a real API process and worker with API keys and the
provider configured, and tokens obtained through the provider's own authorization-code
flow with PKCE. What is verified, and why, is docs/design.md, "People".
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import logging
import threading
import time
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, ClassVar

import httpx
import jwt
import pytest

from broker.core import auth, config, oidc_keys
from broker.core.oidc import InvalidToken, Verifier, person
from broker.core.settings import Settings
from tests import principals
from tests.flow import next_interrupt, wait_status
from tests.harness import Broker, delete_prefix
from tests.oidc import OidcProvider, available, rsa_jwk

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not available(), reason="node or tests/node/node_modules is missing"),
]

KEYS: dict[str, principals.KeySpec] = {
    "admin": (principals.new_key("admin"), [auth.ADMIN], None),
    "resolve": (principals.new_key("resolve"), [auth.READ, auth.RESOLVE], None),
    "service": (principals.new_key("service"), [auth.RESOLVE, auth.ON_BEHALF], None),
}


def headers(who: str) -> dict[str, str]:
    return principals.headers(KEYS, who)


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture(scope="module")
def people(
    redis_url: str, oidc: OidcProvider, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Broker]:
    """A broker trusting the provider, with API keys too."""
    prefix = f"ibt{uuid.uuid4().hex[:10]}"
    b = Broker(
        redis_url,
        prefix,
        tmp_path_factory.mktemp("people"),
        BROKER_AUTH="on",
        BROKER_API_KEYS=principals.keys_json(KEYS),
        **oidc.broker_env(),
    )
    with b.serving():
        yield b


@pytest.fixture(scope="module")
def keys_only(redis_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Broker]:
    """An API with keys and no provider (no worker: nothing runs)."""
    prefix = f"ibt{uuid.uuid4().hex[:10]}"
    b = Broker(
        redis_url,
        prefix,
        tmp_path_factory.mktemp("keys"),
        BROKER_AUTH="on",
        BROKER_API_KEYS=principals.keys_json(KEYS),
    )
    try:
        b.start_api()
        yield b
    finally:
        b.stop()
        delete_prefix(redis_url, prefix)


@pytest.fixture(scope="module")
def admin(people: Broker) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=people.url, timeout=30, headers=headers("admin")) as client:
        yield client


def waiting(admin: httpx.Client) -> tuple[str, str]:
    """A counter run stopped on its interrupt: (run id, interrupt id)."""
    r = admin.post("/runs", json={"agent_id": "counter", "input": {}})
    assert r.status_code == 202, r.text
    run_id = r.json()["run_id"]
    return run_id, next_interrupt(admin, run_id)["id"]


def test_a_person_answers_with_a_token_from_the_provider(
    admin: httpx.Client, people: Broker, oidc: OidcProvider
) -> None:
    run_id, iid = waiting(admin)
    token = oidc.token("ada")
    r = httpx.post(
        f"{people.url}/interrupts/{iid}/resolve", json={"value": "ok"}, headers=bearer(token)
    )
    assert r.status_code == 200, r.text
    resolution = r.json()["resolution"]
    assert resolution["person"] == {
        "sub": "ada",
        "iss": oidc.issuer,
        "email": "ada@example.com",
        "name": "Ada Lovelace",
    }
    assert (resolution["key_id"], resolution["resolved_by"]) == (None, None)
    [entry] = admin.get(f"/interrupts/{iid}/audit").json()["items"]
    assert (entry["outcome"], entry["actor"], entry["key_id"]) == (
        "accepted",
        "ada@example.com",
        None,
    )
    assert entry["person"]["sub"] == "ada"
    assert admin.get(f"/interrupts/{iid}").json()["resolution"]["person"]["sub"] == "ada"
    # the signed receipt names the person too (docs/design.md, "Signed decision receipts")
    assert receipt_claims(people, resolution["receipt"])["by"] == {
        "person": resolution["person"],
        "key_id": None,
        "resolved_by": None,
    }
    wait_status(admin, run_id, "succeeded")


def receipt_claims(broker: Broker, receipt: str) -> dict[str, Any]:
    """A receipt's claims, verified against the broker's open key set."""
    keys = jwt.PyJWKClient(f"{broker.url}/.well-known/jwks.json", cache_jwk_set=False)
    claims: dict[str, Any] = jwt.decode(
        receipt,
        keys.get_signing_key_from_jwt(receipt),
        algorithms=["EdDSA"],
        issuer="http://127.0.0.1:8000",
    )
    return claims


def test_a_persons_token_reads_and_streams_but_does_not_administer(
    admin: httpx.Client, people: Broker, oidc: OidcProvider
) -> None:
    run_id, _ = waiting(admin)
    token = oidc.token("bob")
    assert httpx.get(f"{people.url}/interrupts", headers=bearer(token)).status_code == 200
    r = httpx.get(f"{people.url}/admin/webhooks", headers=bearer(token))
    assert (r.status_code, r.json()["error"]["code"]) == (403, "forbidden")
    # EventSource cannot send headers: the token goes in the query, and not into the log
    url = f"{people.url}/runs/{run_id}/events"
    with httpx.stream("GET", url, params={"api_key": token}, timeout=10) as stream:
        assert stream.status_code == 200
        assert stream.headers["content-type"].startswith("text/event-stream")
    assert people.api is not None
    log = people.api.output()
    assert "/events?api_key=***" in log
    assert token not in log


def _segments(token: str) -> list[str]:
    return token.split(".")


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _tampered(oidc: OidcProvider) -> str:
    """A real token whose payload names someone else, with the original signature."""
    head, payload, signature = _segments(oidc.token("eve"))
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    claims["sub"] = "ada"
    return f"{head}.{_b64(json.dumps(claims).encode())}.{signature}"


def _unsigned(oidc: OidcProvider) -> str:
    head = _b64(json.dumps({"alg": "none", "typ": "JWT"}).encode())
    return f"{head}.{_b64(json.dumps(oidc.claims('ada')).encode())}."


def _hmac_with_public_key(oidc: OidcProvider) -> str:
    """HS256 keyed with the provider's public key: what anyone can compute."""
    head = _b64(json.dumps({"alg": "HS256", "typ": "JWT", "kid": oidc.kid}).encode())
    body = _b64(json.dumps(oidc.claims("ada")).encode())
    mac = hmac.new(oidc.public_pem, f"{head}.{body}".encode(), hashlib.sha256).digest()
    return f"{head}.{body}.{_b64(mac)}"


def _other_key(oidc: OidcProvider) -> str:
    key, _ = rsa_jwk("someone-else")
    return oidc.mint(key=key, headers={"kid": "someone-else"})


REFUSED: dict[str, tuple[Any, str]] = {
    "expired": (lambda op: op.mint(exp=int(time.time()) - 300), "expired"),
    "wrong audience": (lambda op: op.mint(aud="https://other.example/api"), "audience"),
    "wrong issuer": (lambda op: op.mint(iss="https://idp.other.example"), "not issued by"),
    "not yet valid": (lambda op: op.mint(nbf=int(time.time()) + 600), "not valid yet"),
    "no expiry": (lambda op: op.mint(exp=None), "'exp'"),
    "tampered": (_tampered, "signature"),
    "alg none": (_unsigned, "algorithm 'none' is not allowed"),
    "HS256 keyed with the public key": (_hmac_with_public_key, "'HS256' is not allowed"),
    "unknown key": (_other_key, "does not publish"),
}


@pytest.fixture(scope="module")
def target(admin: httpx.Client) -> str:
    return waiting(admin)[1]


@pytest.mark.parametrize("case", list(REFUSED))
def test_tokens_the_provider_did_not_issue_for_the_broker_are_refused(
    case: str, admin: httpx.Client, people: Broker, oidc: OidcProvider, target: str
) -> None:
    make, said = REFUSED[case]
    token = make(oidc)
    r = httpx.post(
        f"{people.url}/interrupts/{target}/resolve", json={"value": "x"}, headers=bearer(token)
    )
    assert r.status_code == 401, r.text
    error = r.json()["error"]
    assert error["code"] == "unauthorized"
    assert said in error["message"]
    assert 'error="invalid_token"' in r.headers["www-authenticate"]
    # refused at the gate, before it names an interrupt: nothing changed, nothing logged
    view = admin.get(f"/interrupts/{target}").json()
    assert (view["status"], view["resolution"]) == ("pending", None)
    assert admin.get(f"/interrupts/{target}/audit").json()["items"] == []


def test_naming_the_answerer_needs_the_on_behalf_scope(
    admin: httpx.Client, people: Broker, oidc: OidcProvider
) -> None:
    run_id, iid = waiting(admin)
    url = f"{people.url}/interrupts/{iid}/resolve"
    named = {"value": "ok", "resolved_by": "ada@example.com"}
    for who in (headers("resolve"), bearer(oidc.token("bob"))):
        r = httpx.post(url, json=named, headers=who)
        assert r.status_code == 403, r.text
        assert r.json()["error"] == {
            "code": "forbidden",
            "message": r.json()["error"]["message"],
            "scope": auth.ON_BEHALF,
        }
    trail = admin.get(f"/interrupts/{iid}/audit").json()["items"]
    # audited under who asked, never under the name they gave
    assert [(e["actor"], e["outcome"]) for e in trail] == [
        ("resolve", "forbidden"),
        ("bob@example.com", "forbidden"),
    ]
    assert admin.get(f"/interrupts/{iid}").json()["status"] == "pending"
    r = httpx.post(url, json=named, headers=headers("service"))
    assert r.status_code == 200, r.text
    resolution = r.json()["resolution"]
    assert (resolution["resolved_by"], resolution["key_id"], resolution["person"]) == (
        "ada@example.com",
        "service",
        None,
    )
    assert receipt_claims(people, resolution["receipt"])["by"] == {
        "person": None,
        "key_id": "service",
        "resolved_by": "ada@example.com",
    }
    wait_status(admin, run_id, "succeeded")


def test_auth_config_says_how_people_sign_in(
    people: Broker, keys_only: Broker, oidc: OidcProvider
) -> None:
    r = httpx.get(f"{people.url}/auth/config")
    assert r.status_code == 200
    assert r.json() == {
        "oidc": {
            "issuer": oidc.issuer,
            "client_id": "dashboard",
            "audience": oidc.audience,
            "scope": "openid email profile groups",
        }
    }
    assert httpx.get(f"{keys_only.url}/auth/config").json() == {"oidc": None}
    doc = httpx.get(f"{people.url}/openapi.json").json()
    assert doc["paths"]["/auth/config"]["get"]["security"] == []


def test_a_jwt_is_refused_where_no_provider_is_configured(
    keys_only: Broker, oidc: OidcProvider
) -> None:
    r = httpx.get(f"{keys_only.url}/interrupts", headers=bearer(oidc.mint()))
    assert r.status_code == 401
    assert "no OpenID provider is configured" in r.json()["error"]["message"]
    assert 'error="invalid_token"' in r.headers["www-authenticate"]
    # keys keep working beside it
    assert httpx.get(f"{keys_only.url}/interrupts", headers=headers("resolve")).status_code == 200


# Claims, configuration and keys, without processes


def test_claims_map_to_the_person() -> None:
    base = {"sub": "u1", "iss": "https://idp", "email": "u1@example.com", "name": "U"}
    who = person({**base, "email_verified": True, "groups": ["a", "b", 3]})
    assert who == auth.Person("u1", "https://idp", "u1@example.com", "U", frozenset("ab"))
    assert person({**base, "groups": "a b  c"}).groups == frozenset("abc")
    assert person(base).groups == frozenset()
    assert person({**base, "groups": {"a": 1}}).groups == frozenset()
    nested = {**base, "realm_access": {"roles": ["ops"]}}
    assert person(nested, "realm_access.roles").groups == frozenset({"ops"})
    # an email the provider does not say is verified names nobody (unless configured)
    assert person({**base, "email_verified": False}).email is None
    assert person({**base, "email_verified": False}).names == frozenset({"user:u1"})
    assert person({**base, "email_verified": "true"}).email is None
    assert person(base).email is None
    assert person({**base, "email_verified": True}).email == "u1@example.com"
    assert person(base, trust_unverified_email=True).email == "u1@example.com"
    with pytest.raises(InvalidToken, match="subject"):
        person({"iss": "https://idp"})


def test_a_person_is_matched_by_at_most_200_groups(caplog: pytest.LogCaptureFixture) -> None:
    many = [f"g{n}" for n in range(250)]
    with caplog.at_level(logging.WARNING, "broker.oidc"):
        who = person({"sub": "u1", "iss": "https://idp", "groups": many})
    assert who.groups == frozenset(many[:200])
    assert "lists 250 groups" in caplog.text
    caplog.clear()
    assert len(person({"sub": "u1", "groups": many[:200] * 2}).groups) == 200
    assert caplog.text == ""


@pytest.mark.parametrize(
    ("env", "said"),
    [
        ({"oidc_issuer": "http://idp.example", "oidc_audience": "a"}, "must be https"),
        ({"oidc_issuer": "https://idp.example"}, "BROKER_OIDC_AUDIENCE is required"),
        ({"oidc_audience": "a"}, "without BROKER_OIDC_ISSUER"),
        (
            {"oidc_issuer": "https://idp.example", "oidc_audience": "a", "oidc_scopes": "[1]"},
            "unknown scopes",
        ),
        (
            {
                "oidc_issuer": "https://idp.example",
                "oidc_audience": "a",
                "oidc_scopes": '["admin"]',
            },
            "admin",
        ),
        (
            {
                "oidc_issuer": "https://idp.example",
                "oidc_audience": "a",
                "oidc_jwks_url": "http://keys.example/jwks",
            },
            "must be https",
        ),
        *(
            (
                {"oidc_issuer": "https://idp.example", "oidc_audience": "a", "oidc_scopes": s},
                "may not give every person",
            )
            for s in ('["interrupts:read", "interrupts:on_behalf"]', '["interrupts:assign"]')
        ),
        (
            {"oidc_scopes": '["interrupts:assign"]'},  # refused even without a provider
            "may not give every person",
        ),
        (
            {
                "oidc_issuer": "https://idp.example",
                "oidc_audience": "a",
                "oidc_group_scopes": '{"leads": ["admin"]}',
            },
            "may not give the admin scope",
        ),
        (
            {
                "oidc_issuer": "https://idp.example",
                "oidc_audience": "a",
                "oidc_group_scopes": '{"leads": ["interrupts:rule"]}',
            },
            "unknown scopes",
        ),
        (
            {
                "oidc_issuer": "https://idp.example",
                "oidc_audience": "a",
                "oidc_group_scopes": '{"leads": "interrupts:assign"}',
            },
            "must be a list",
        ),
        ({"oidc_group_scopes": '{"leads": ["interrupts:assign"]}'}, "without BROKER_OIDC_ISSUER"),
    ],
)
def test_unusable_provider_settings_are_refused_at_start(
    env: dict[str, str], said: str, redis_url: str
) -> None:
    settings = Settings(redis_url=redis_url, **env)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=said):
        config.check(settings, "worker")


def test_people_alone_are_enough_to_serve(redis_url: str) -> None:
    settings = Settings(redis_url=redis_url, oidc_issuer="http://127.0.0.1:9", oidc_audience="a")
    assert config.check(settings, "api").verifier is not None


async def test_an_unreachable_provider_is_unavailable_not_a_bad_token(oidc: OidcProvider) -> None:
    settings = Settings(
        oidc_issuer="http://127.0.0.1:9", oidc_audience=oidc.audience, oidc_timeout_s=2
    )
    verifier = Verifier(settings)
    with pytest.raises(oidc_keys.ProviderUnavailable, match="discovery document"):
        await verifier.principal(oidc.mint())


class _KeySet(BaseHTTPRequestHandler):
    keys: ClassVar[list[dict[str, Any]]] = []
    fetches: ClassVar[int] = 0
    mode: ClassVar[str] = "serve"
    """``serve`` the keys; ``fail`` with a 500; ``hang`` past the client's timeout."""

    def do_GET(self) -> None:
        type(self).fetches += 1
        if self.mode == "hang":
            time.sleep(2)
        if self.mode != "serve":
            self.send_error(500)
            return
        body = json.dumps({"keys": self.keys}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def key_server() -> Iterator[tuple[str, type[_KeySet]]]:
    handler = type("KeySet", (_KeySet,), {"keys": [], "fetches": 0, "mode": "serve"})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/jwks", handler
    finally:
        server.shutdown()
        server.server_close()


async def test_rotated_keys_are_fetched_once_the_cooldown_allows(
    key_server: tuple[str, type[_KeySet]], monkeypatch: pytest.MonkeyPatch
) -> None:
    url, served = key_server
    monkeypatch.setattr(oidc_keys, "COOLDOWN_S", 1.0)
    issuer, audience = "https://idp.example", "https://broker.example/api"
    old, old_jwk = rsa_jwk("old")
    new, new_jwk = rsa_jwk("new")
    public = {k: v for k, v in old_jwk.items() if k in ("kty", "n", "e", "kid", "alg", "use")}
    served.keys = [public]
    verifier = Verifier(Settings(oidc_issuer=issuer, oidc_audience=audience, oidc_jwks_url=url))

    def token(key: Any, kid: str) -> str:
        claims = {"iss": issuer, "aud": audience, "sub": kid, "exp": int(time.time()) + 60}
        return jwt.encode(claims, key, "RS256", {"kid": kid})

    assert (await verifier.principal(token(old, "old"))).person is not None
    assert (await verifier.principal(token(old, "old"))).person is not None
    assert served.fetches == 1  # the key is cached
    served.keys = [{k: v for k, v in new_jwk.items() if k not in ("d", "p", "q", "dp", "dq", "qi")}]
    # the new key is looked up at most once per cooldown, then found
    deadline = time.monotonic() + 10
    while True:
        try:
            rotated = (await verifier.principal(token(new, "new"))).person
            break
        except InvalidToken as exc:
            assert "does not publish" in str(exc)
            assert time.monotonic() < deadline
            await asyncio.sleep(0.2)
    assert rotated is not None and rotated.subject == "new"
    assert served.fetches == 2


async def test_a_key_verifies_only_its_own_algorithm(key_server: tuple[str, type[_KeySet]]) -> None:
    url, served = key_server
    issuer, audience = "https://idp.example", "https://broker.example/api"
    key, jwk = rsa_jwk("rs")  # its JWK names RS256
    served.keys = [{k: v for k, v in jwk.items() if k in ("kty", "n", "e", "kid", "alg", "use")}]
    verifier = Verifier(Settings(oidc_issuer=issuer, oidc_audience=audience, oidc_jwks_url=url))
    claims = {"iss": issuer, "aud": audience, "sub": "s", "exp": int(time.time()) + 60}
    with pytest.raises(InvalidToken, match="not for algorithm PS256"):
        await verifier.principal(jwt.encode(claims, key, "PS256", {"kid": "rs"}))
    # the refusal does not make the key unknown for the tokens it does sign
    assert (await verifier.principal(jwt.encode(claims, key, "RS256", {"kid": "rs"}))).person


ISSUER, AUDIENCE = "https://idp.example", "https://broker.example/api"


def _public(jwk: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in jwk.items() if k in ("kty", "n", "e", "kid", "alg", "use")}


def _signed(key: Any, kid: str) -> str:
    claims = {"iss": ISSUER, "aud": AUDIENCE, "sub": kid, "exp": int(time.time()) + 60}
    return jwt.encode(claims, key, "RS256", {"kid": kid})


@pytest.mark.parametrize("outage", ["fail", "hang"])
async def test_a_provider_outage_is_asked_once_per_retry_window_and_known_keys_serve(
    outage: str, key_server: tuple[str, type[_KeySet]], monkeypatch: pytest.MonkeyPatch
) -> None:
    """docs/design.md, "People": while the provider cannot be reached, requests with a
    known key are served from it without each waiting on the network in turn."""
    url, served = key_server
    monkeypatch.setattr(oidc_keys, "LIFESPAN_S", 0.5)
    key, jwk = rsa_jwk("k1")
    served.keys = [_public(jwk)]
    verifier = Verifier(
        Settings(oidc_issuer=ISSUER, oidc_audience=AUDIENCE, oidc_jwks_url=url, oidc_timeout_s=0.5)
    )
    assert (await verifier.principal(_signed(key, "k1"))).person is not None
    assert served.fetches == 1
    await asyncio.sleep(0.6)  # past the key's freshness: the next request asks again
    served.mode = outage
    answered = await asyncio.gather(*(verifier.principal(_signed(key, "k1")) for _ in range(8)))
    assert all(p.person is not None and p.person.subject == "k1" for p in answered)
    for _ in range(5):
        assert (await verifier.principal(_signed(key, "k1"))).person is not None
    # a key it never had is refused at once, without asking the provider again
    other, _ = rsa_jwk("k2")
    with pytest.raises(oidc_keys.ProviderUnavailable):
        await verifier.principal(_signed(other, "k2"))
    assert served.fetches == 2  # one attempt in this retry window, whatever the requests
    # once the window has passed, the provider is asked again (once) and trusted again
    monkeypatch.setattr(oidc_keys, "RETRY_S", 0.0)
    verifier.keys._keys_retry_at = 0.0
    served.mode = "serve"
    assert (await verifier.principal(_signed(key, "k1"))).person is not None
    assert served.fetches == 3


async def test_a_request_cancelled_while_keys_are_fetched_keeps_one_fetch_at_a_time(
    key_server: tuple[str, type[_KeySet]],
) -> None:
    url, served = key_server
    key, jwk = rsa_jwk("k1")
    served.keys = [_public(jwk)]
    served.mode = "hang"
    verifier = Verifier(
        Settings(oidc_issuer=ISSUER, oidc_audience=AUDIENCE, oidc_jwks_url=url, oidc_timeout_s=1)
    )
    first = asyncio.ensure_future(verifier.principal(_signed(key, "k1")))
    while served.fetches == 0:
        await asyncio.sleep(0.02)
    first.cancel()
    with pytest.raises(asyncio.CancelledError):
        await first
    # the cancelled request's fetch still holds the lookup: this one waits for it and
    # learns of its failure instead of starting a second fetch beside it
    with pytest.raises(oidc_keys.ProviderUnavailable):
        await verifier.principal(_signed(key, "k1"))
    assert served.fetches == 1


async def test_an_empty_key_set_is_the_provider_unavailable_not_an_error(
    key_server: tuple[str, type[_KeySet]],
) -> None:
    url, served = key_server
    key, _ = rsa_jwk("k1")
    served.keys = []
    verifier = Verifier(Settings(oidc_issuer=ISSUER, oidc_audience=AUDIENCE, oidc_jwks_url=url))
    with pytest.raises(oidc_keys.ProviderUnavailable, match="keys cannot be read"):
        await verifier.principal(_signed(key, "k1"))


def test_an_empty_key_set_answers_503(
    redis_url: str, key_server: tuple[str, type[_KeySet]], tmp_path: Any
) -> None:
    url, served = key_server
    key, _ = rsa_jwk("k1")
    served.keys = []
    prefix = f"ibt{uuid.uuid4().hex[:10]}"
    b = Broker(
        redis_url,
        prefix,
        tmp_path,
        BROKER_AUTH="on",
        BROKER_OIDC_ISSUER=ISSUER,
        BROKER_OIDC_AUDIENCE=AUDIENCE,
        BROKER_OIDC_JWKS_URL=url,
    )
    try:
        b.start_api()
        r = httpx.get(f"{b.url}/interrupts", headers=bearer(_signed(key, "k1")))
        assert r.status_code == 503, r.text
        assert r.json()["error"]["code"] == "identity_provider_unavailable"
    finally:
        b.stop()
        delete_prefix(redis_url, prefix)
