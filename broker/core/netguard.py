"""Outgoing requests only to public addresses, unless private ones are allowed.

A webhook URL could name a loopback, private or link-local address (a cloud metadata
service, an admin port) to make the worker probe the internal network. The host is
resolved and every address checked; the request then goes to the checked address (with
the original Host header and TLS server name), so DNS cannot change in between.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from typing import Any

import httpx

IP = ipaddress.IPv4Address | ipaddress.IPv6Address


class UnsafeAddress(Exception):
    """The URL is malformed or names an address outside the public internet."""


def is_public(ip: IP) -> bool:
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_global and not ip.is_multicast


def parse(url: str) -> httpx.URL:
    try:
        parsed = httpx.URL(url)
    except (httpx.InvalidURL, TypeError) as exc:
        raise UnsafeAddress(f"{url!r} is not a URL") from exc
    if parsed.scheme not in ("http", "https") or not parsed.host:
        raise UnsafeAddress("a webhook URL is http:// or https:// with a host")
    if parsed.userinfo:
        raise UnsafeAddress("put credentials in the secret, not in the webhook URL")
    return parsed


async def resolve(url: str, *, allow_private: bool) -> tuple[httpx.URL, str]:
    """The parsed URL and the checked address to connect to."""
    parsed = parse(url)
    port = parsed.port or (443 if parsed.scheme == "https" else 80)
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(
            parsed.host, port, type=socket.SOCK_STREAM
        )
    except (OSError, UnicodeError) as exc:  # UnicodeError: a label IDNA cannot encode
        raise UnsafeAddress(f"cannot resolve {parsed.host!r}: {exc}") from exc
    addresses = [str(info[4][0]).split("%")[0] for info in infos]
    if not addresses:
        raise UnsafeAddress(f"{parsed.host!r} has no address")
    if not allow_private:
        for address in addresses:
            if not is_public(ipaddress.ip_address(address)):
                raise UnsafeAddress(
                    f"{parsed.host!r} resolves to {address}, which is not a public address; "
                    "set BROKER_WEBHOOK_ALLOW_PRIVATE=1 to allow it"
                )
    return parsed, addresses[0]


async def post(
    client: httpx.AsyncClient,
    url: str,
    *,
    content: str,
    headers: dict[str, str],
    allow_private: bool,
    timeout: float,
) -> httpx.Response:
    """POSTs to ``url`` at the address checked by ``resolve``; never follows redirects."""
    parsed, address = await resolve(url, allow_private=allow_private)
    target = parsed.copy_with(host=address)
    extensions: dict[str, Any] = {"timeout": httpx.Timeout(timeout).as_dict()}
    if parsed.scheme == "https":
        extensions["sni_hostname"] = parsed.host
    host_header = parsed.netloc.decode("ascii")
    request = client.build_request(
        "POST",
        target,
        content=content.encode(),
        headers={**headers, "host": host_header, "content-type": "application/json"},
        extensions=extensions,
    )
    return await client.send(request, follow_redirects=False)
