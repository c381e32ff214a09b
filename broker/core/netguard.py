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


_NAT64 = ipaddress.ip_network("64:ff9b::/96")  # RFC 6052: the IPv4 address is the last 32 bits
_NAT64_LOCAL = ipaddress.ip_network("64:ff9b:1::/48")  # RFC 8215: local use only
_TRANSLATED = ipaddress.ip_network("::ffff:0:0:0/96")  # RFC 2765 (SIIT): the last 32 bits


def embedded_ipv4(ip: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 address carries, which is where packets to it end up:
    IPv4-mapped (``::ffff:a.b.c.d``), IPv4-compatible (``::a.b.c.d``, also ``::`` and
    ``::1``), IPv4-translated (``::ffff:0:a.b.c.d``), NAT64 (``64:ff9b::a.b.c.d``) and
    6to4 (``2002:AABB:CCDD::``, bits 16..48)."""
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip.sixtofour is not None:
        return ip.sixtofour
    if ip in _NAT64 or ip in _TRANSLATED or int(ip) >> 32 == 0:
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return None


def is_public(ip: IP) -> bool:
    """Whether ``ip`` is on the public internet, judging an IPv6 address that embeds an
    IPv4 address by that IPv4 address too."""
    if not ip.is_global or ip.is_multicast:
        return False
    if isinstance(ip, ipaddress.IPv6Address):
        if ip in _NAT64_LOCAL:
            return False
        inner = embedded_ipv4(ip)
        if inner is not None:
            return inner.is_global and not inner.is_multicast
    return True


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
