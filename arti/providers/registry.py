"""Look up a provider client by name, with credentials read from a settings-like object."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import httpx

from arti.providers.base import Clock, ProviderClient, utcnow
from arti.providers.instagram import InstagramClient
from arti.providers.soundcloud import SoundCloudClient
from arti.providers.spotify import SpotifyClient
from arti.providers.tiktok import TikTokClient
from arti.providers.youtube import YouTubeClient

PROVIDERS: dict[str, type[ProviderClient]] = {
    "spotify": SpotifyClient,
    "youtube": YouTubeClient,
    "instagram": InstagramClient,
    "soundcloud": SoundCloudClient,
    "tiktok": TikTokClient,
}
"""Provider name → client class."""


def _setting(settings_like: Any, key: str) -> Any:
    if isinstance(settings_like, Mapping):
        return settings_like.get(key)
    return getattr(settings_like, key, None)


def _secret_value(value: Any) -> str | None:
    """Plain string of a setting that may be a pydantic SecretStr."""
    if value is None:
        return None
    getter = getattr(value, "get_secret_value", None)
    return str(getter() if callable(getter) else value)


def get_provider(
    name: str, settings_like: Any, http: httpx.AsyncClient | None = None, *, clock: Clock = utcnow
) -> ProviderClient:
    """The client for `name` ('spotify', 'youtube', 'instagram', 'soundcloud', 'tiktok').

    Credentials come from `settings_like` (an object with attributes or a mapping) as
    `<name>_client_id` and `<name>_client_secret` (a pydantic `SecretStr` is accepted) and are passed to
    the client's constructor, with `provider_authorize_base` (the provider sandbox's consent pages, set only in
    sandbox mode; None: the provider's own).
    """
    key = name.strip().lower()
    try:
        cls = PROVIDERS[key]
    except KeyError:
        raise ValueError(f"unknown provider {name!r}: expected one of {', '.join(sorted(PROVIDERS))}") from None
    client_id = _secret_value(_setting(settings_like, f"{key}_client_id"))
    client_secret = _secret_value(_setting(settings_like, f"{key}_client_secret"))
    missing = [f"{key}_client_{part}" for part, value in (("id", client_id), ("secret", client_secret)) if not value]
    if missing:
        raise ValueError(f"{key}: missing setting(s) {', '.join(missing)}")
    assert client_id is not None and client_secret is not None
    base = _setting(settings_like, "provider_authorize_base")
    return cls(client_id, client_secret, http, clock=clock, authorize_base=base if isinstance(base, str) else None)
