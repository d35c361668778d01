"""Verify (and, for local use and tests, mint) Supabase JWTs.

Supabase Auth (GoTrue) signs access tokens either with the project's shared JWT secret (HS256, the
legacy and local-development setup) or with an asymmetric signing key (ES256 or RS256) whose public
half is published at ``{SUPABASE_URL}/auth/v1/.well-known/jwks.json``. :class:`JWTVerifier` accepts
both, and nothing else:

* the algorithm comes from an allow-list (``HS256``, ``ES256``, ``RS256``); ``alg=none`` and every
  other algorithm are refused before any key is looked at;
* the algorithm decides where the key comes from, never the other way round: ``HS256`` is verified
  only with the configured secret, ``ES256``/``RS256`` only with a JWKS key of the matching type. An
  HS256 token "signed" with a published public key, or an RS256 token presented where only the
  secret is configured, therefore fails (no algorithm confusion);
* JWKS keys are cached for ``jwks_ttl`` seconds; a token with an unknown ``kid`` triggers one early
  refetch, at most once per ``jwks_refetch_cooldown`` seconds, so a flood of made-up key ids cannot
  hammer the endpoint;
* ``exp`` is required; ``role`` must be one of ``anon``/``authenticated``/``service_role``; user
  tokens (role ``authenticated``) need ``aud == "authenticated"`` and a ``sub`` that is a UUID (the user id
  ``auth.uid()`` casts it to).

Every failure is an :class:`AuthError` with a stable ``code`` and a message a user can act on. Messages
never contain the token. Signature checks are PyJWT's; there is no hand-written cryptography here.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import httpx
import jwt
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError

from arti.errors import ArtiError

__all__ = [
    "API_ROLES",
    "ASYMMETRIC_ALGORITHMS",
    "DEFAULT_AUDIENCE",
    "HMAC_ALGORITHMS",
    "PLATFORM_ADMIN_FLAG",
    "AuthError",
    "Claims",
    "JWTVerifier",
    "bearer_token",
    "jwks_url_for",
    "mint_service_key",
    "mint_token",
]

log = logging.getLogger(__name__)

API_ROLES: tuple[str, ...] = ("anon", "authenticated", "service_role")
"""The database roles a Supabase JWT may carry (PostgREST switches to the token's ``role``)."""

DEFAULT_AUDIENCE = "authenticated"
"""The ``aud`` GoTrue puts in user access tokens."""

HMAC_ALGORITHMS: tuple[str, ...] = ("HS256",)
ASYMMETRIC_ALGORITHMS: tuple[str, ...] = ("ES256", "RS256")

PLATFORM_ADMIN_FLAG = "platform_admin"
"""Key in ``app_metadata`` (writable only with the service role) that marks an ARTi platform admin."""

LOCAL_AUTH_ISSUER = "http://127.0.0.1:54321/auth/v1"
"""The ``iss`` of user tokens from a local ``supabase start`` stack."""

SUPABASE_DEMO_ISSUER = "supabase-demo"
SUPABASE_DEMO_KEY_EXPIRY = 1983812996
"""``exp`` of the anon/service_role keys ``supabase start`` prints (2032-11-11 UTC)."""

MAX_TOKEN_LENGTH = 16_384
"""Longer "tokens" are refused before parsing (GoTrue access tokens are ~1 KB)."""

# RFC 6750 section 2.1: credentials = "Bearer" 1*SP b64token
_BEARER_RE = re.compile(r"(?P<scheme>[A-Za-z]+) +(?P<token>[A-Za-z0-9\-._~+/]+=*)")
_HTTP_STATUS = {"jwks_unavailable": 503}
_UUID_RE = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")


class AuthError(ArtiError):
    """A token was missing or refused.

    ``code`` is stable and machine-readable (``missing_token``, ``invalid_token``, ``expired_token``,
    ``invalid_audience``, ``invalid_role``, ``jwks_unavailable``); ``message`` says what to do about it
    and never contains the token. ``http_status`` is what an HTTP handler should answer.
    """

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code

    @property
    def http_status(self) -> int:
        """401 for anything the caller can fix with a better token; 503 when the signing keys are unreachable."""
        return _HTTP_STATUS.get(self.code, 401)

    def __repr__(self) -> str:
        return f"AuthError({self.code!r}, {self.message!r})"


class Claims(BaseModel):
    """The verified claims of a Supabase JWT.

    Known claims are typed attributes; every claim (including ones not modelled here, such as
    ``aal``, ``amr`` or ``session_id``) can also be read dict-style (``claims["aal"]``,
    ``claims.get("session_id")``). :meth:`as_dict` returns the claims exactly as they were in the token,
    ready for ``set_config('request.jwt.claims', ...)``.
    """

    model_config = ConfigDict(extra="allow", frozen=True)

    sub: str | None = None
    role: str
    email: str | None = None
    phone: str | None = None
    aud: str | list[str] | None = None
    exp: int
    iat: int | None = None
    iss: str | None = None
    session_id: str | None = None
    is_anonymous: bool = False
    app_metadata: dict[str, Any] = Field(default_factory=dict)
    user_metadata: dict[str, Any] = Field(default_factory=dict)

    _raw: dict[str, Any] = PrivateAttr(default_factory=dict)

    @classmethod
    def from_payload(cls, payload: Mapping[str, Any]) -> Claims:
        """Build from a decoded (already verified) payload, keeping the raw claims for :meth:`as_dict`."""
        data = dict(payload)
        # GoTrue emits null metadata for some users; treat it as empty rather than failing.
        for key in ("app_metadata", "user_metadata"):
            if data.get(key) is None:
                data.pop(key, None)
        claims = cls.model_validate(data)
        claims._raw = dict(payload)
        return claims

    @property
    def is_platform_admin(self) -> bool:
        """True only when ``app_metadata.platform_admin`` is the JSON boolean ``true``.

        ``app_metadata`` (unlike ``user_metadata``) can only be written with the service role, so users
        cannot grant this to themselves.
        """
        return self.app_metadata.get(PLATFORM_ADMIN_FLAG) is True

    @property
    def audiences(self) -> list[str]:
        """``aud`` as a list (a JWT may carry one audience or several)."""
        if self.aud is None:
            return []
        return [self.aud] if isinstance(self.aud, str) else list(self.aud)

    def as_dict(self) -> dict[str, Any]:
        """A copy of the claims exactly as the token carried them."""
        return dict(self._raw)

    def __getitem__(self, key: str) -> Any:
        return self._raw[key]

    def __contains__(self, key: object) -> bool:
        return key in self._raw

    def get(self, key: str, default: Any = None) -> Any:
        """A claim by name, or ``default``."""
        return self._raw.get(key, default)


def jwks_url_for(supabase_url: str) -> str:
    """The JWKS endpoint of a Supabase project (``{SUPABASE_URL}/auth/v1/.well-known/jwks.json``)."""
    return supabase_url.rstrip("/") + "/auth/v1/.well-known/jwks.json"


def bearer_token(authorization_header: str | None) -> str:
    """The token from an ``Authorization: Bearer <token>`` header value, parsed strictly (RFC 6750).

    The scheme is matched case-insensitively (RFC 7235); the token must be a single b64token with
    nothing after it. Raises :class:`AuthError` ``missing_token`` when there is no header or no token,
    ``invalid_token`` when the header is not a well-formed Bearer credential.
    """
    if authorization_header is None or not authorization_header.strip():
        raise AuthError("missing_token", "Sign in first: send the access token as `Authorization: Bearer <token>`.")
    value = authorization_header.strip()
    if value.lower() == "bearer":
        raise AuthError("missing_token", "The Authorization header has no token after `Bearer`.")
    match = _BEARER_RE.fullmatch(value)
    scheme = (match.group("scheme") if match else value.split(" ", 1)[0]).lower()
    if scheme != "bearer":
        raise AuthError("invalid_token", "The Authorization header must use the Bearer scheme: `Bearer <token>`.")
    if match is None:
        raise AuthError(
            "invalid_token",
            "The Authorization header is malformed: expected exactly `Bearer <token>` with one JWT and nothing else.",
        )
    return match.group("token")


class _KeyCache:
    """Public signing keys from a JWKS endpoint, by ``kid``, with a TTL and a refetch cooldown."""

    def __init__(self, url: str, http: httpx.AsyncClient | None, ttl: float, cooldown: float,
                 clock: Callable[[], float]) -> None:
        self.url = url
        self._http = http
        self._ttl = ttl
        self._cooldown = cooldown
        self._clock = clock
        self._keys: dict[str, jwt.PyJWK] = {}
        self._fetched_at: float | None = None  # last successful fetch
        self._attempted_at: float | None = None  # last fetch attempt, successful or not
        self._lock = asyncio.Lock()

    def _fresh(self, now: float) -> bool:
        return self._fetched_at is not None and now - self._fetched_at < self._ttl

    def _may_fetch(self, now: float) -> bool:
        return self._attempted_at is None or now - self._attempted_at >= self._cooldown

    async def get(self, kid: str) -> jwt.PyJWK | None:
        """The key with this id, fetching the set when stale or (rate-limited) when the id is unknown."""
        if self._fresh(self._clock()) and kid in self._keys:
            return self._keys[kid]
        async with self._lock:  # one fetch at a time; waiters then see its result
            now = self._clock()
            # At most one fetch per call and per cooldown: when the set is stale, or the kid is unknown
            # (the project may have rotated its signing key since the last fetch).
            if self._may_fetch(now) and (not self._fresh(now) or kid not in self._keys):
                await self._refresh(now)
            if not self._keys and self._fetched_at is None:
                raise AuthError(
                    "jwks_unavailable",
                    f"Cannot load the signing keys from {self.url}; check SUPABASE_URL and try again shortly.",
                )
            return self._keys.get(kid)

    async def _refresh(self, now: float) -> None:
        """Fetch the key set; on failure keep the previous keys (if any) and log why."""
        self._attempted_at = now
        try:
            keys = await self._fetch()
        except (httpx.HTTPError, ValueError) as exc:
            log.warning("JWKS fetch from %s failed: %s", self.url, exc)
            return
        self._keys = keys
        self._fetched_at = now

    async def _fetch(self) -> dict[str, jwt.PyJWK]:
        if self._http is None:
            async with httpx.AsyncClient(timeout=10.0) as client:
                response = await client.get(self.url, headers={"Accept": "application/json"})
        else:
            response = await self._http.get(self.url, headers={"Accept": "application/json"})
        response.raise_for_status()
        document = response.json()
        if not isinstance(document, dict) or not isinstance(document.get("keys"), list):
            raise ValueError("response is not a JWK set (no `keys` list)")
        keys: dict[str, jwt.PyJWK] = {}
        for jwk in document["keys"]:
            key = _usable_key(jwk)
            if key is not None:
                keys[jwk["kid"]] = key
        return keys


def _usable_key(jwk: Any) -> jwt.PyJWK | None:
    """A JWK as a PyJWK if it is an asymmetric signature-verification key we accept, else None."""
    if not isinstance(jwk, dict) or not isinstance(jwk.get("kid"), str):
        return None
    if jwk.get("use", "sig") != "sig" or "verify" not in jwk.get("key_ops", ["verify"]):
        return None
    if jwk.get("kty") not in ("RSA", "EC") or "d" in jwk:  # public keys only; never a shared secret
        return None
    try:
        key = jwt.PyJWK(jwk)
    except jwt.PyJWTError as exc:
        log.warning("ignoring JWKS key %r: %s", jwk.get("kid"), type(exc).__name__)
        return None
    return key if key.algorithm_name in ASYMMETRIC_ALGORITHMS else None


class JWTVerifier:
    """Verifies Supabase access tokens and API keys; see the module docstring for the rules.

    Args:
        secret: the project's JWT secret (``SUPABASE_JWT_SECRET``) for HS256 tokens; None refuses HS256.
        jwks_url: the JWKS endpoint (see :func:`jwks_url_for`) for ES256/RS256 tokens; None refuses them.
        http: client used for JWKS fetches (one is created per fetch when None).
        audience: the ``aud`` user tokens must carry.
        leeway: seconds of clock skew tolerated on ``exp``/``nbf``/``iat``.
        roles: the roles accepted (a subset of :data:`API_ROLES`), e.g. ``("authenticated",)`` for a
            handler that needs a signed-in user.
        jwks_ttl: seconds a fetched key set is trusted before it is fetched again.
        jwks_refetch_cooldown: minimum seconds between two fetches, whatever triggers them.
        clock: monotonic clock for the JWKS cache (injectable for tests).
    """

    def __init__(
        self,
        secret: str | None = None,
        jwks_url: str | None = None,
        http: httpx.AsyncClient | None = None,
        *,
        audience: str = DEFAULT_AUDIENCE,
        leeway: float = 10.0,
        roles: Iterable[str] = API_ROLES,
        jwks_ttl: float = 600.0,
        jwks_refetch_cooldown: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not secret and not jwks_url:
            raise ValueError("JWTVerifier needs a JWT secret, a JWKS URL, or both")
        self._roles = frozenset(roles)
        if not self._roles or not self._roles <= set(API_ROLES):
            raise ValueError(f"roles must be a non-empty subset of {API_ROLES}")
        self._secret = secret or None
        self._audience = audience
        self._leeway = leeway
        self._keys = _KeyCache(jwks_url, http, jwks_ttl, jwks_refetch_cooldown, clock) if jwks_url else None

    def __repr__(self) -> str:
        return (f"JWTVerifier(secret={'set' if self._secret else None}, "
                f"jwks_url={self._keys.url if self._keys else None!r}, audience={self._audience!r})")

    @property
    def algorithms(self) -> tuple[str, ...]:
        """The algorithms this verifier accepts, given what it was configured with."""
        return (HMAC_ALGORITHMS if self._secret else ()) + (ASYMMETRIC_ALGORITHMS if self._keys else ())

    async def verify(self, token: str | None) -> Claims:
        """Verify a token's signature and claims; raise :class:`AuthError` if anything is wrong."""
        if token is None or not token.strip():
            raise AuthError("missing_token", "Sign in first: no access token was sent.")
        if len(token) > MAX_TOKEN_LENGTH:
            raise AuthError("invalid_token", "The access token is too large to be a Supabase token; sign in again.")
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            raise AuthError("invalid_token", "The access token is not a well-formed JWT; sign in again.") from None
        alg = header.get("alg")
        if alg not in self.algorithms:
            raise AuthError(
                "invalid_token",
                "The access token's signing algorithm is not accepted "
                f"(this server accepts {', '.join(self.algorithms)}); sign in again.",
            )
        key = self._secret if alg in HMAC_ALGORITHMS else await self._public_key(header, alg)
        payload = self._decode(token, key, alg)
        return self._check_claims(payload)

    async def _public_key(self, header: Mapping[str, Any], alg: str) -> Any:
        assert self._keys is not None  # alg is asymmetric only when a JWKS URL is configured
        kid = header.get("kid")
        if not isinstance(kid, str) or not kid:
            raise AuthError("invalid_token", "The access token names no signing key (kid); sign in again.")
        jwk = await self._keys.get(kid)
        if jwk is None:
            raise AuthError(
                "invalid_token",
                "The access token is signed with a key this project does not publish (unknown kid); sign in again.",
            )
        if jwk.algorithm_name != alg:
            raise AuthError("invalid_token", "The access token's algorithm does not match its signing key.")
        return jwk.key

    def _decode(self, token: str, key: Any, alg: str) -> dict[str, Any]:
        try:
            return jwt.decode(
                token,
                key,
                algorithms=[alg],  # exactly the one algorithm whose key we chose
                options={"require": ["exp"], "verify_aud": False},  # aud depends on the role: checked below
                leeway=self._leeway,
            )
        except jwt.ExpiredSignatureError:
            raise AuthError("expired_token", "The access token has expired; refresh the session or sign in again.") \
                from None
        except jwt.MissingRequiredClaimError as exc:
            raise AuthError("invalid_token", f"The access token has no `{exc.claim}` claim; sign in again.") from None
        except jwt.ImmatureSignatureError:
            raise AuthError("invalid_token", "The access token is not valid yet; check this machine's clock.") \
                from None
        except jwt.InvalidSignatureError:
            raise AuthError(
                "invalid_token",
                "The access token's signature does not verify: it was issued by another project or altered.",
            ) from None
        except jwt.InvalidKeyError:
            raise AuthError("invalid_token", "The access token cannot be verified with this project's keys.") \
                from None
        except jwt.PyJWTError:
            raise AuthError("invalid_token", "The access token is malformed; sign in again.") from None

    def _check_claims(self, payload: dict[str, Any]) -> Claims:
        role = payload.get("role")
        if role not in API_ROLES:
            raise AuthError(
                "invalid_role",
                f"The access token's role is not one of {', '.join(API_ROLES)}; use a Supabase-issued token.",
            )
        if role not in self._roles:
            raise AuthError("invalid_role", f"This endpoint does not accept {role} tokens; sign in as a user.")
        aud = payload.get("aud")
        audiences = [aud] if isinstance(aud, str) else aud
        if aud is None:
            if role == "authenticated":
                raise AuthError("invalid_audience",
                                f"The access token has no audience; user tokens must have aud={self._audience!r}.")
        elif not isinstance(audiences, list) or self._audience not in audiences:
            raise AuthError("invalid_audience",
                            f"The access token is not meant for this API (aud must be {self._audience!r}).")
        if role == "authenticated" and not payload.get("sub"):
            raise AuthError("invalid_token", "The access token names no user (no `sub` claim); sign in again.")
        if role == "authenticated" and not (isinstance(payload["sub"], str) and _UUID_RE.fullmatch(payload["sub"])):
            # auth.uid() casts sub to uuid: anything else would fail in Postgres, not here.
            raise AuthError("invalid_token", "The access token's user id (`sub`) is not a UUID; sign in again.")
        try:
            return Claims.from_payload(payload)
        except ValidationError as exc:
            fields = ", ".join(sorted({str(e["loc"][0]) for e in exc.errors() if e["loc"]}))
            raise AuthError("invalid_token", f"The access token's claims are malformed ({fields}).") from None


def mint_token(
    secret: str,
    sub: str,
    email: str | None = None,
    role: str = "authenticated",
    expires_in: int = 3600,
    app_metadata: Mapping[str, Any] | None = None,
    user_metadata: Mapping[str, Any] | None = None,
    *,
    issuer: str = LOCAL_AUTH_ISSUER,
    issued_at: int | None = None,
    session_id: str | None = None,
    is_anonymous: bool = False,
) -> str:
    """An HS256 access token with the claims GoTrue issues for a signed-in user.

    For local use (``arti token --user EMAIL``) and tests. ``issued_at`` (Unix seconds, default now)
    together with ``expires_in`` makes already-expired tokens for tests.
    """
    if not secret:
        raise ValueError("a JWT secret is needed to mint a token")
    if role not in API_ROLES:
        raise ValueError(f"role must be one of {API_ROLES}")
    if not sub:
        raise ValueError("sub (the user id) must not be empty")
    iat = int(time.time()) if issued_at is None else int(issued_at)
    claims: dict[str, Any] = {
        "iss": issuer,
        "sub": str(sub),
        "aud": DEFAULT_AUDIENCE,
        "exp": iat + int(expires_in),
        "iat": iat,
        "email": email or "",
        "phone": "",
        "app_metadata": dict(app_metadata) if app_metadata is not None
        else {"provider": "email", "providers": ["email"]},
        "user_metadata": dict(user_metadata or {}),
        "role": role,
        "aal": "aal1",
        "amr": [{"method": "password", "timestamp": iat}],
        "session_id": session_id or str(uuid.uuid4()),
        "is_anonymous": is_anonymous,
    }
    return jwt.encode(claims, secret, algorithm="HS256")


def mint_service_key(
    secret: str,
    role: str,
    *,
    issuer: str = SUPABASE_DEMO_ISSUER,
    expires_at: int = SUPABASE_DEMO_KEY_EXPIRY,
) -> str:
    """An ``anon`` or ``service_role`` API key signed with ``secret``, shaped like the keys ``supabase start`` prints.

    With the local development secret and the defaults this reproduces those well-known keys exactly.
    """
    if not secret:
        raise ValueError("a JWT secret is needed to mint an API key")
    if role not in ("anon", "service_role"):
        raise ValueError("API keys carry role 'anon' or 'service_role'")
    return jwt.encode({"iss": issuer, "role": role, "exp": int(expires_at)}, secret, algorithm="HS256")
