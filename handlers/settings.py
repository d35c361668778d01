"""Settings of the edge-style handlers: everything in `arti.settings.Settings`, plus what only the handlers use.

`HandlerSettings` extends the core settings (database URL, JWT secret, SUPABASE_URL, service-role key, key
ring, provider OAuth apps) with:

* ``ARTI_FRONTEND_URLS`` — comma-separated allow-list of frontend URLs the OAuth flow may send the browser
  back to, e.g. ``https://app.example.com,http://localhost:3000/settings``. A ``redirect_to`` is accepted when
  it has the same scheme, host and port as an entry and its path lies under the entry's path. The first entry
  is the default ``redirect_to``. Unset in sandbox mode (ARTI_PROVIDER_SANDBOX=1, embedded only), the provider
  sandbox's ``/connected`` page comes first (it shows the completion secret and the request that completes it).
* ``ARTI_OAUTH_REDIRECT_BASE`` — the public URL under which the providers call us back; the callback of
  provider ``p`` is ``{base}/{p}/callback`` and must be registered in that provider's app.
* ``ARTI_OAUTH_STATE_TTL_SECONDS`` — how long a started OAuth flow may take (default 600 s).
* ``ARTI_HEALTH_HEARTBEAT_MAX_AGE`` — a worker whose heartbeat is older is not counted as alive (60 s).
* ``ARTI_HANDLERS_DB_POOL_MAX`` / ``ARTI_HANDLERS_DB_TIMEOUT`` — the connection pool's size and how long a
  request waits for a connection before answering 503.
"""

from __future__ import annotations

from typing import Annotated, Any
from urllib.parse import urlsplit

from pydantic import Field, field_validator, model_validator
from pydantic_settings import NoDecode

from arti.settings import Settings

DEFAULT_FRONTEND_URLS = ("http://localhost:3000", "http://127.0.0.1:3000")
OAUTH_CALLBACK_PATH = "/functions/v1/oauth"


def _check_base_url(value: str, setting: str) -> str:
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"{setting}: {value!r} is not an absolute http(s) URL")
    if parts.username or parts.password or parts.fragment:
        raise ValueError(f"{setting}: {value!r} must not contain credentials or a #fragment")
    return value


class HandlerSettings(Settings):
    """The core settings plus the handlers' own (see the module docstring)."""

    frontend_urls: Annotated[list[str], NoDecode] = Field(
        default=list(DEFAULT_FRONTEND_URLS),
        validation_alias="ARTI_FRONTEND_URLS",
        description="Comma-separated frontend URLs the OAuth flow may redirect to; the first is the default.",
    )
    oauth_redirect_base: str | None = Field(
        default=None,
        validation_alias="ARTI_OAUTH_REDIRECT_BASE",
        description="Public base URL of the OAuth callbacks: {base}/{provider}/callback. Unset: "
        "http://localhost:{ARTI_HTTP_PORT}/functions/v1/oauth (the local entry point).",
    )
    oauth_state_ttl_seconds: int = Field(default=600, ge=60, le=3600, validation_alias="ARTI_OAUTH_STATE_TTL_SECONDS")
    health_heartbeat_max_age: float = Field(default=60.0, gt=0, validation_alias="ARTI_HEALTH_HEARTBEAT_MAX_AGE")
    db_pool_max: int = Field(default=10, ge=1, le=100, validation_alias="ARTI_HANDLERS_DB_POOL_MAX")
    db_timeout: float = Field(default=5.0, gt=0, le=60, validation_alias="ARTI_HANDLERS_DB_TIMEOUT")

    @field_validator("frontend_urls", mode="before")
    @classmethod
    def _split_frontend_urls(cls, value: Any) -> Any:
        if isinstance(value, str):
            value = [part.strip() for part in value.split(",") if part.strip()]
        if not value:
            raise ValueError("ARTI_FRONTEND_URLS: at least one frontend URL is needed")
        return [_check_base_url(str(url), "ARTI_FRONTEND_URLS") for url in value]

    @field_validator("oauth_redirect_base")
    @classmethod
    def _check_redirect_base(cls, value: str | None) -> str | None:
        if value is None or not value.strip():
            return None
        parts = urlsplit(_check_base_url(value, "ARTI_OAUTH_REDIRECT_BASE"))
        if parts.query:
            raise ValueError("ARTI_OAUTH_REDIRECT_BASE must not have a query string")
        return value.rstrip("/")

    @model_validator(mode="after")
    def _sandbox_landing_page(self) -> HandlerSettings:
        if self.sandbox_active and "frontend_urls" not in self.model_fields_set:
            self.frontend_urls = [f"{self.sandbox_url}/connected", *self.frontend_urls]
        return self

    @property
    def oauth_base(self) -> str:
        """ARTI_OAUTH_REDIRECT_BASE, or the local entry point on ARTI_HTTP_PORT."""
        return self.oauth_redirect_base or f"http://localhost:{self.http_port}{OAUTH_CALLBACK_PATH}"

    @property
    def auth_admin_available(self) -> bool:
        """True when a GoTrue server can be reached for user administration (SUPABASE_URL + service key)."""
        return bool(self.supabase_url and self.service_role_key)

    def oauth_callback_url(self, provider: str) -> str:
        """The redirect_uri registered with `provider` (identical at authorize and code-exchange time)."""
        return f"{self.oauth_base}/{provider}/callback"
