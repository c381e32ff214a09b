"""A real OpenID provider for tests: the npm ``oidc-provider`` (OpenID certified), started
by tests/node/oidc.mjs on a loopback port.

``OidcProvider.token(sub)`` gets a real access token through the provider's own
authorization-code flow with PKCE (its authorization and token endpoints, and the sign-in
form of oidc.mjs), as the dashboard does; ``mint(**claims)`` signs any token with the
provider's own key, for the cases a real provider never issues (expired, another
audience). ``broker_env()`` is the BROKER_OIDC_* environment of a broker that trusts it.

    with oidc_provider(tmp_path, redirect_uris=[broker.url + "/"]) as op: ...

or the ``oidc`` fixture (tests/conftest.py) for a provider whose client redirects to a
placeholder (the code is taken from the redirect, never followed).
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import secrets
import shutil
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urljoin, urlsplit

import httpx
import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm

from tests.harness import ROOT, free_port, wait_until

NODE_DIR = ROOT / "tests" / "node"
AUDIENCE = "https://broker.example/api"
CLIENT_ID = "dashboard"
SCOPE = "openid email profile groups"
ACCOUNTS: dict[str, dict[str, Any]] = {
    "ada": {"email": "ada@example.com", "name": "Ada Lovelace", "groups": ["finance"]},
    "bob": {"email": "bob@example.com", "name": "Bob Ops", "groups": ["ops"]},
    "eve": {"email": "eve@example.com", "name": "Eve", "groups": []},
}
PLACEHOLDER_REDIRECT = "http://127.0.0.1:9/callback"


def available() -> bool:
    return shutil.which("node") is not None and (NODE_DIR / "node_modules/oidc-provider").exists()


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


@dataclass
class OidcProvider:
    issuer: str
    audience: str
    client_id: str
    redirect_uris: list[str]
    accounts: dict[str, dict[str, Any]]
    key: rsa.RSAPrivateKey
    kid: str
    proc: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    @property
    def public_pem(self) -> bytes:
        return self.key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )

    def broker_env(self, *, client_id: bool = True) -> dict[str, str]:
        """BROKER_OIDC_* for a broker trusting this provider (the dashboard signing in
        with its client unless ``client_id`` is False)."""
        env = {"BROKER_OIDC_ISSUER": self.issuer, "BROKER_OIDC_AUDIENCE": self.audience}
        if client_id:
            env["BROKER_OIDC_CLIENT_ID"] = self.client_id
        return env

    def discovery(self) -> dict[str, Any]:
        doc: dict[str, Any] = httpx.get(
            f"{self.issuer}/.well-known/openid-configuration", timeout=10
        ).json()
        return doc

    def token(self, sub: str, *, redirect_uri: str | None = None, scope: str = SCOPE) -> str:
        """An access token for account ``sub``, through the authorization-code flow with
        PKCE: the provider's authorization endpoint, its sign-in form, its token endpoint."""
        redirect_uri = redirect_uri or self.redirect_uris[0]
        doc = self.discovery()
        verifier = _b64(secrets.token_bytes(32))
        state = secrets.token_urlsafe(16)
        with httpx.Client(timeout=10, follow_redirects=False) as http:
            r = http.get(
                doc["authorization_endpoint"],
                params={
                    "client_id": self.client_id,
                    "redirect_uri": redirect_uri,
                    "response_type": "code",
                    "scope": scope,
                    "state": state,
                    "code_challenge": _b64(hashlib.sha256(verifier.encode()).digest()),
                    "code_challenge_method": "S256",
                    "resource": self.audience,
                },
            )
            r = _follow(http, r, until=redirect_uri)
            assert r.status_code == 200 and 'id="login"' in r.text, (r.status_code, r.text)
            r = http.post(str(r.url), data={"login": sub})
            r = _follow(http, r, until=redirect_uri)
            assert r.status_code in (302, 303), (r.status_code, r.text)
            query = parse_qs(urlsplit(r.headers["location"]).query)
            assert query.get("state") == [state], query
            assert "code" in query, query
            r = http.post(
                doc["token_endpoint"],
                data={
                    "grant_type": "authorization_code",
                    "code": query["code"][0],
                    "redirect_uri": redirect_uri,
                    "client_id": self.client_id,
                    "code_verifier": verifier,
                    "resource": self.audience,
                },
            )
        assert r.status_code == 200, r.text
        body = r.json()
        return str(body["access_token"])

    def claims(self, sub: str = "ada") -> dict[str, Any]:
        """The claims of an access token the provider issues for ``sub``."""
        now = int(time.time())
        person = self.accounts.get(sub, {})
        return {
            "iss": self.issuer,
            "sub": sub,
            "aud": self.audience,
            "exp": now + 600,
            "iat": now,
            "jti": secrets.token_urlsafe(12),
            "client_id": self.client_id,
            "email": person.get("email"),
            "email_verified": True,
            "name": person.get("name"),
            "groups": person.get("groups", []),
        }

    def mint(
        self,
        *,
        algorithm: str = "RS256",
        key: Any = None,
        headers: dict[str, Any] | None = None,
        **overrides: Any,
    ) -> str:
        """A token signed with the provider's key (or ``key``), with the claims of a real
        one changed by ``overrides`` (None removes a claim)."""
        claims = self.claims(overrides.pop("sub", "ada"))
        for name, value in overrides.items():
            if value is None:
                claims.pop(name, None)
            else:
                claims[name] = value
        header = {"kid": self.kid, "typ": "at+jwt", **(headers or {})}
        return jwt.encode(claims, key if key is not None else self.key, algorithm, header)


def _follow(http: httpx.Client, r: httpx.Response, *, until: str) -> httpx.Response:
    """Follows the provider's redirects, stopping at one to ``until`` (the client)."""
    for _ in range(10):
        location = r.headers.get("location")
        if r.status_code not in (301, 302, 303, 307) or location is None:
            return r
        target = urljoin(str(r.url), location)
        if target.startswith(until):
            return r
        r = http.get(target)
    raise AssertionError("the provider redirected too many times")


def rsa_jwk(kid: str) -> tuple[rsa.RSAPrivateKey, dict[str, Any]]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    jwk = json.loads(RSAAlgorithm.to_jwk(key))
    return key, {**jwk, "kid": kid, "alg": "RS256", "use": "sig"}


@contextlib.contextmanager
def oidc_provider(
    workdir: Path,
    *,
    redirect_uris: list[str] | None = None,
    accounts: dict[str, dict[str, Any]] | None = None,
    audience: str = AUDIENCE,
) -> Iterator[OidcProvider]:
    """A running provider, stopped afterwards; its log is ``workdir/oidc-<port>.log``."""
    port = free_port()
    issuer = f"http://127.0.0.1:{port}"
    kid = f"k-{secrets.token_hex(4)}"
    key, jwk = rsa_jwk(kid)
    op = OidcProvider(
        issuer=issuer,
        audience=audience,
        client_id=CLIENT_ID,
        redirect_uris=redirect_uris or [PLACEHOLDER_REDIRECT],
        accounts=accounts if accounts is not None else ACCOUNTS,
        key=key,
        kid=kid,
    )
    config = workdir / f"oidc-{port}.json"
    config.write_text(
        json.dumps(
            {
                "issuer": issuer,
                "audience": audience,
                "jwks": {"keys": [jwk]},
                "client": {"client_id": CLIENT_ID, "redirect_uris": op.redirect_uris},
                "accounts": op.accounts,
                "cookieKey": secrets.token_urlsafe(32),
            }
        )
    )
    config.chmod(0o600)
    log = open(workdir / f"oidc-{port}.log", "wb")
    op.proc = subprocess.Popen(
        ["node", str(NODE_DIR / "oidc.mjs"), str(port), str(config)],
        cwd=NODE_DIR,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        wait_until(lambda: _answers(issuer, op.proc, log.name), "the OpenID provider to answer")
        yield op
    finally:
        if op.proc.poll() is None:
            op.proc.terminate()
            try:
                op.proc.wait(10)
            except subprocess.TimeoutExpired:
                op.proc.kill()
                op.proc.wait(5)
        log.close()
        config.unlink(missing_ok=True)


def _answers(issuer: str, proc: subprocess.Popen[bytes] | None, log: str) -> bool:
    if proc is not None and proc.poll() is not None:
        raise AssertionError(f"the OpenID provider exited:\n{Path(log).read_text()[-4000:]}")
    try:
        r = httpx.get(f"{issuer}/.well-known/openid-configuration", timeout=2)
    except httpx.HTTPError:
        return False
    return r.status_code == 200
