"""Best-effort revocation of a provider grant when an account is disconnected.

Only documented endpoints are called:

* YouTube (Google): `POST https://oauth2.googleapis.com/revoke` with the form field `token`; revoking the
  refresh token revokes the whole grant (its access tokens too). 200 means revoked.
* SoundCloud: `POST https://secure.soundcloud.com/sign-out` with the JSON body `{"access_token": ...}`.
* Spotify and Instagram document no revocation endpoint for apps: the user removes the app in their account
  settings; we only forget the tokens.

Failures never block a disconnect (the tokens are already deleted on our side); they are logged without
the tokens.
"""

from __future__ import annotations

import logging
from typing import Literal

import httpx

log = logging.getLogger("handlers.oauth")

GOOGLE_REVOKE_URL = "https://oauth2.googleapis.com/revoke"
SOUNDCLOUD_SIGN_OUT_URL = "https://secure.soundcloud.com/sign-out"
REVOKE_TIMEOUT = 10.0

Outcome = Literal["revoked", "failed", "unsupported", "no_tokens"]

SUPPORTS_REVOCATION = frozenset({"youtube", "soundcloud"})


async def revoke_grant(http: httpx.AsyncClient, provider: str, access_token: str | None,
                       refresh_token: str | None) -> Outcome:
    """Ask the provider to revoke the grant. Never raises."""
    if provider not in SUPPORTS_REVOCATION:
        return "unsupported"
    if not access_token and not refresh_token:
        return "no_tokens"
    try:
        if provider == "youtube":
            token = refresh_token or access_token
            response = await http.post(GOOGLE_REVOKE_URL, data={"token": token}, timeout=REVOKE_TIMEOUT)
        else:
            if not access_token:
                return "no_tokens"
            response = await http.post(SOUNDCLOUD_SIGN_OUT_URL, json={"access_token": access_token},
                                       headers={"Accept": "application/json"}, timeout=REVOKE_TIMEOUT)
    except httpx.HTTPError as exc:
        log.warning("%s: revoking the grant failed (%s)", provider, type(exc).__name__)
        return "failed"
    if response.is_success:
        return "revoked"
    log.warning("%s: revoking the grant answered HTTP %s", provider, response.status_code)
    return "failed"
