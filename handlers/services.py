"""What every handler needs, built once at startup: settings, pool, HTTP clients, JWT verifier, key ring."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import httpx
from psycopg_pool import AsyncConnectionPool
from starlette.requests import Request

from arti.crypto import TokenCipher
from arti.jwt_auth import Claims, JWTVerifier, bearer_token
from arti.providers import PROVIDERS, ProviderClient, get_provider
from handlers.errors import HandlerError
from handlers.redirects import RedirectAllowList
from handlers.settings import HandlerSettings


@dataclass
class Services:
    """Shared per-process resources (in `app.state.services`)."""

    settings: HandlerSettings
    pool: AsyncConnectionPool[Any]
    provider_http: httpx.AsyncClient
    """For provider APIs (routed through ARTI_PROVIDER_GATEWAY when set)."""
    auth_http: httpx.AsyncClient
    """For Supabase Auth: the admin API and the JWKS."""
    verifier: JWTVerifier
    redirects: RedirectAllowList
    _cipher: TokenCipher | None = field(default=None, repr=False)

    @property
    def db_timeout(self) -> float:
        return self.settings.db_timeout

    def cipher(self) -> TokenCipher:
        """The key ring for tokens at rest (KeySettingError, answered 503, when ARTI_ENCRYPTION_KEYS is unusable)."""
        if self._cipher is None:
            self._cipher = TokenCipher.from_setting(self.settings.encryption_keys)
        return self._cipher

    def provider(self, name: str) -> ProviderClient:
        """The client of a provider whose OAuth app is configured, else 503."""
        try:
            return get_provider(name, self.settings, self.provider_http)
        except ValueError:
            upper = name.upper()
            raise HandlerError(
                503, "provider_not_configured",
                f"{name} cannot be connected here: set {upper}_CLIENT_ID and {upper}_CLIENT_SECRET.",
            ) from None


def services(request: Request) -> Services:
    """The shared resources of the app serving this request."""
    return request.app.state.services  # type: ignore[no-any-return]


def provider_name(request: Request) -> str:
    """The `{provider}` path parameter, if it names a supported provider; else 404."""
    name = str(request.path_params.get("provider", ""))
    if name not in PROVIDERS:
        raise HandlerError(404, "unknown_provider",
                           f"unknown provider {name[:40]!r}: expected one of {', '.join(sorted(PROVIDERS))}")
    return name


async def authenticate(request: Request) -> Claims:
    """The verified claims of the request's `Authorization: Bearer` user token (AuthError otherwise)."""
    token = bearer_token(request.headers.get("authorization"))
    return await services(request).verifier.verify(token)
