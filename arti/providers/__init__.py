"""Provider API clients (Spotify, YouTube, Instagram, SoundCloud, TikTok) behind one small interface.

See `arti.providers.base` for the interface, data types and errors, and `get_provider` to get a client.
"""

from arti.providers.base import (
    NOT_PROVIDED,
    AccountIdentity,
    MetricPoint,
    PkcePair,
    PreviousPoint,
    ProviderAuthError,
    ProviderClient,
    ProviderError,
    ProviderRateLimited,
    ProviderUnavailable,
    TokenSet,
    code_challenge_s256,
    generate_code_verifier,
    widen_for_reporting_lag,
)
from arti.providers.instagram import InstagramClient
from arti.providers.registry import PROVIDERS, get_provider
from arti.providers.soundcloud import SoundCloudClient
from arti.providers.spotify import SpotifyClient
from arti.providers.tiktok import TikTokClient
from arti.providers.youtube import YouTubeClient

__all__ = [
    "NOT_PROVIDED",
    "PROVIDERS",
    "AccountIdentity",
    "InstagramClient",
    "MetricPoint",
    "PkcePair",
    "PreviousPoint",
    "ProviderAuthError",
    "ProviderClient",
    "ProviderError",
    "ProviderRateLimited",
    "ProviderUnavailable",
    "SoundCloudClient",
    "SpotifyClient",
    "TikTokClient",
    "TokenSet",
    "YouTubeClient",
    "code_challenge_s256",
    "generate_code_verifier",
    "get_provider",
    "widen_for_reporting_lag",
]
