"""The HTTP client provider calls go through.

`ARTI_PROVIDER_GATEWAY` (e.g. `http://127.0.0.1:9100`) routes every provider request to one HTTP
endpoint instead of the provider's host, keeping the original URL in the `X-Arti-Original-Url`
header: an egress gateway in production, a fake provider on loopback in end-to-end tests (the only
way to fake the HTTP boundary of a separate worker process).
"""

from __future__ import annotations

import functools
import ssl

import httpx

ORIGINAL_URL_HEADER = "X-Arti-Original-Url"


@functools.cache
def _tls_context() -> ssl.SSLContext:
    """One TLS context per process: building one loads the CA bundle (~0.1 s of CPU), once per client otherwise."""
    return httpx.create_ssl_context()


class GatewayTransport(httpx.AsyncBaseTransport):
    """Sends each request to `gateway` with the original URL in a header."""

    def __init__(self, gateway: str) -> None:
        self._gateway = httpx.URL(gateway)
        self._inner = httpx.AsyncHTTPTransport(verify=_tls_context())

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        original = str(request.url)
        request.url = request.url.copy_with(scheme=self._gateway.scheme, host=self._gateway.host,
                                            port=self._gateway.port)
        request.headers[ORIGINAL_URL_HEADER] = original
        request.headers["Host"] = self._gateway.netloc.decode()
        return await self._inner.handle_async_request(request)

    async def aclose(self) -> None:
        await self._inner.aclose()


def provider_http_client(gateway: str | None = None, *, timeout: float = 30.0) -> httpx.AsyncClient:
    """An AsyncClient for provider APIs (through the gateway when one is configured)."""
    transport = GatewayTransport(gateway) if gateway else None
    return httpx.AsyncClient(transport=transport, timeout=timeout, follow_redirects=False, verify=_tls_context())
