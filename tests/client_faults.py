"""Faults on the wire for the Python client's tests: httpx transports in front of a real
broker that lose a response after the broker took the request, answer one 503 in its
place, or cut a live stream partway through a message."""

from __future__ import annotations

import threading
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field

import httpx

Picks = Callable[[httpx.Request], bool]


@dataclass
class Faults:
    """What to break: the first matching request's response is lost after the broker
    took it, the next matching one gets a 503 without reaching it; every request seen
    is kept."""

    picks: Picks
    lose: int = 1
    refuse: int = 1
    seen: list[httpx.Request] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def before(self, request: httpx.Request) -> httpx.Response | None:
        with self.lock:
            self.seen.append(request)
            if self.picks(request) and self.lose == 0 and self.refuse > 0:
                self.refuse -= 1
                return httpx.Response(
                    503,
                    headers={"Retry-After": "0"},
                    json={"error": {"code": "redis_unavailable", "message": "try again"}},
                )
        return None

    def after(self, request: httpx.Request) -> bool:
        """True when this response is to be lost."""
        with self.lock:
            if self.picks(request) and self.lose > 0:
                self.lose -= 1
                return True
        return False


class FaultyTransport(httpx.HTTPTransport):
    def __init__(self, faults: Faults) -> None:
        super().__init__()
        self.faults = faults

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        refused = self.faults.before(request)
        if refused is not None:
            return refused
        response = super().handle_request(request)
        if self.faults.after(request):
            response.read()
            response.close()
            raise httpx.ReadError("the connection dropped before the response", request=request)
        return response


class AsyncFaultyTransport(httpx.AsyncHTTPTransport):
    def __init__(self, faults: Faults) -> None:
        super().__init__()
        self.faults = faults

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        refused = self.faults.before(request)
        if refused is not None:
            return refused
        response = await super().handle_async_request(request)
        if self.faults.after(request):
            await response.aread()
            await response.aclose()
            raise httpx.ReadError("the connection dropped before the response", request=request)
        return response


class _Cut(httpx.AsyncByteStream):
    """A response body that ends in a dropped connection halfway through its
    ``chunks``-th chunk."""

    def __init__(self, inner: httpx.Response, request: httpx.Request, chunks: int) -> None:
        self.inner, self.request, self.chunks = inner, request, chunks

    async def __aiter__(self) -> AsyncIterator[bytes]:
        n = 0
        async for chunk in self.inner.aiter_raw():
            n += 1
            if n >= self.chunks and len(chunk) > 1:
                yield chunk[: len(chunk) // 2]
                await self.inner.aclose()
                raise httpx.ReadError("the stream's connection dropped", request=self.request)
            yield chunk

    async def aclose(self) -> None:
        await self.inner.aclose()


class CuttingTransport(httpx.AsyncHTTPTransport):
    """Cuts the first response that ``picks`` chooses after ``chunks`` chunks; counts
    the requests it chose."""

    def __init__(self, picks: Picks, chunks: int) -> None:
        super().__init__()
        self.picks, self.chunks, self.chosen = picks, chunks, 0

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        response = await super().handle_async_request(request)
        if not self.picks(request):
            return response
        self.chosen += 1
        if self.chosen > 1:
            return response
        return httpx.Response(
            response.status_code,
            headers=response.headers,
            stream=_Cut(response, request, self.chunks),
            request=request,
        )
