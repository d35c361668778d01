"""Best-effort revocation of a provider grant when an account is disconnected.

Only documented endpoints are called:

* YouTube (Google): `POST https://oauth2.googleapis.com/revoke` with the form field `token`; revoking the
  refresh token revokes the whole grant (its access tokens too). 200 means revoked.
* SoundCloud: `POST https://secure.soundcloud.com/sign-out` with the JSON body `{"access_token": ...}`.
* TikTok: `POST https://open.tiktokapis.com/v2/oauth/revoke/` with the form fields `client_key`, `client_secret`
  and `token` (the access token); a success answers an empty body, a failure TikTok's error object
  (https://developers.tiktok.com/docs/en/oauth-revoke-a-user-access-token). Without the app's credentials
  nothing is sent.
* Spotify and Instagram document no revocation endpoint for apps: the user removes the app in their account
  settings; we only forget the tokens.

Failures never block a disconnect (the tokens are already deleted on our side); they are logged without
the tokens.
"""

from __future__ import annotations

import logging
from typing import Literal

import httpx

from arti.providers.tiktok import REVOKE_URL as TIKTOK_REVOKE_URL

log = logging.getLogger("handlers.oauth")

GOOGLE_REVOKE_URL = "https://oauth2.googleapis.com/revoke"
SOUNDCLOUD_SIGN_OUT_URL = "https://secure.soundcloud.com/sign-out"
REVOKE_TIMEOUT = 10.0

Outcome = Literal["revoked", "failed", "unsupported", "no_tokens"]

SUPPORTS_REVOCATION = frozenset({"youtube", "soundcloud", "tiktok"})


async def revoke_grant(http: httpx.AsyncClient, provider: str, access_token: str | None,
                       refresh_token: str | None, *, client_id: str | None = None,
                       client_secret: str | None = None) -> Outcome:
    """Ask the provider to revoke the grant (TikTok needs the app's `client_id`, its client key, and secret).
    Never raises."""
    if provider not in SUPPORTS_REVOCATION:
        return "unsupported"
    # Only Google revokes a grant by its refresh token; the others need the access token.
    if not access_token and not (provider == "youtube" and refresh_token):
        return "no_tokens"
    try:
        if provider == "youtube":
            token = refresh_token or access_token
            response = await http.post(GOOGLE_REVOKE_URL, data={"token": token}, timeout=REVOKE_TIMEOUT)
        elif provider == "tiktok":
            if not client_id or not client_secret:
                log.warning("tiktok: revoking the grant needs TIKTOK_CLIENT_ID and TIKTOK_CLIENT_SECRET; not sent")
                return "failed"
            response = await http.post(TIKTOK_REVOKE_URL, timeout=REVOKE_TIMEOUT, data={
                "client_key": client_id, "client_secret": client_secret, "token": access_token})
            error = _tiktok_error_code(response) if response.is_success else None
            if error not in (None, "ok"):
                log.warning("tiktok: revoking the grant answered the error %s", error)
                return "failed"
        else:
            response = await http.post(SOUNDCLOUD_SIGN_OUT_URL, json={"access_token": access_token},
                                       headers={"Accept": "application/json"}, timeout=REVOKE_TIMEOUT)
    except httpx.HTTPError as exc:
        log.warning("%s: revoking the grant failed (%s)", provider, type(exc).__name__)
        return "failed"
    if response.is_success:
        return "revoked"
    log.warning("%s: revoking the grant answered HTTP %s", provider, response.status_code)
    return "failed"


def _tiktok_error_code(response: httpx.Response) -> str | None:
    """The code of TikTok's error object in an answer, if it carries one."""
    try:
        body = response.json()
    except ValueError:
        return None
    error = body.get("error") if isinstance(body, dict) else None
    if isinstance(error, dict):
        return str(error.get("code")) if error.get("code") is not None else None
    return str(error) if isinstance(error, str) else None
