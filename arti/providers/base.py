"""The interface every provider client implements, its data types, typed errors and shared HTTP plumbing.

A provider client speaks to one platform (Spotify, YouTube, Instagram, SoundCloud, TikTok) over an injected
`httpx.AsyncClient`, so tests can hand it a `MockTransport` or use respx. It never stores tokens: every
call receives the token it needs and returns what the platform answered.

Conventions shared by all clients:

* `None` in a `MetricPoint.value` means *the platform did not provide it* (the `note` says why), never 0.
* Snapshot counts (followers, totals) are recorded on the `end` day of the requested range only:
  platforms give current values, not history.
* Errors are typed: `ProviderAuthError` (the account must be re-connected), `ProviderRateLimited`
  (wait `retry_after_seconds`), `ProviderUnavailable` (5xx / network; retry later), `ProviderError`
  (anything else). Messages never contain tokens.
"""

from __future__ import annotations

import base64
import hashlib
import re
import secrets
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, date, datetime, timedelta
from email.utils import parsedate_to_datetime
from typing import Any, ClassVar, Protocol, TypeVar

import httpx
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from arti.errors import ArtiError
from arti.quotas import QuotaSpec, UsageReport

NOT_PROVIDED = "not provided"
"""The `MetricPoint.note` of a value the platform did not provide (stored as NULL, never 0)."""

_MAX_MESSAGE_CHARS = 300
_REDACTED = "[redacted]"
_SENSITIVE_QUERY = re.compile(
    r"(?i)\b(access_token|refresh_token|client_secret|code|code_verifier|oauth_token|token)=[^&\s\"']+"
)

Clock = Callable[[], datetime]
ProviderModelT = TypeVar("ProviderModelT", bound=BaseModel)
UNFETCHED: Any = object()
"""`fetch_metrics(..., public=UNFETCHED)`: the client fetches the account's public data itself."""


class CallObserver(Protocol):
    """Sees every request a client sends: `before` may wait (pacing) or raise (the call must not be made now);
    `after` gets every response, with the usage the provider reported in it."""

    async def before(self, method: str, url: str | httpx.URL) -> None: ...

    async def after(self, method: str, url: str | httpx.URL, response: httpx.Response,
                    report: UsageReport | None) -> None: ...


def utcnow() -> datetime:
    """The current time, timezone-aware in UTC (the default clock of every client)."""
    return datetime.now(UTC)


# --------------------------------------------------------------------------------------------- errors


class ProviderError(ArtiError):
    """A provider call failed. Carries the provider name, HTTP status (if any) and the provider's message."""

    retryable: ClassVar[bool] = False

    def __init__(self, provider: str, message: str, *, status: int | None = None) -> None:
        self.provider = provider
        self.status = status
        self.provider_message = message
        where = f" (HTTP {status})" if status is not None else ""
        super().__init__(f"{provider}: {message}{where}")


class ProviderAuthError(ProviderError):
    """The token is invalid, expired or revoked (401, `invalid_grant`, …): the account needs re-auth."""


class ProviderRateLimited(ProviderError):
    """The platform asked us to slow down. `retry_after_seconds` is None when it did not say for how long.

    `applies_to` is "app" (every account of the provider must wait) or "account" (only this one: e.g.
    Instagram's per-account Business Use Case limit); `scope` names the quota scope the provider said is
    exhausted, when it said which (e.g. YouTube's daily Data API quota).
    """

    retryable: ClassVar[bool] = True

    def __init__(
        self, provider: str, message: str, *, status: int | None = None, retry_after_seconds: float | None = None,
        applies_to: str = "app", scope: str | None = None,
    ) -> None:
        self.retry_after_seconds = retry_after_seconds
        self.applies_to = applies_to
        self.scope = scope
        super().__init__(provider, message, status=status)


class ProviderUnavailable(ProviderError):
    """The platform is down or unreachable (5xx, timeouts, network errors). Retry later."""

    retryable: ClassVar[bool] = True


class ProviderAccountGone(ProviderError):
    """The platform has nothing for this account's id any more (deleted, terminated or no longer public)."""


def redact(text: str, secret_values: Iterable[str | None] = (), *, max_chars: int = _MAX_MESSAGE_CHARS) -> str:
    """`text` with the given secret values and any token-like query parameters replaced, cut to `max_chars`."""
    for value in secret_values:
        if value and len(value) >= 4:
            text = text.replace(value, _REDACTED)
    text = _SENSITIVE_QUERY.sub(lambda m: f"{m.group(1)}={_REDACTED}", text)
    if len(text) > max_chars:
        text = text[: max_chars - 1] + "…"
    return text


def parse_retry_after(value: str | None, now: datetime) -> float | None:
    """Seconds to wait from a `Retry-After` header: delta-seconds or an HTTP-date (RFC 9110). None if absent/bad."""
    if value is None or not value.strip():
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - now).total_seconds())


# --------------------------------------------------------------------------------------------- models


class TokenSet(BaseModel):
    """OAuth tokens for one connected account. Tokens are hidden from `repr()` so they never reach logs."""

    model_config = ConfigDict(frozen=True)

    access_token: str = Field(repr=False)
    refresh_token: str | None = Field(default=None, repr=False)
    expires_at: datetime | None = None
    scope: str | None = None
    token_type: str = "Bearer"  # noqa: S105 (the OAuth token type, not a secret)

    @classmethod
    def from_token_response(
        cls, payload: Mapping[str, Any], *, now: datetime, fallback_refresh_token: str | None = None
    ) -> TokenSet:
        """Build from an RFC 6749 token response; `expires_at` = now + `expires_in`.

        `fallback_refresh_token` is kept when the response carries no `refresh_token` (Google and Spotify
        omit it on refresh). Providers with single-use refresh tokens must not pass one.
        """
        expires_in = payload.get("expires_in")
        expires_at = None
        if isinstance(expires_in, int | float) or (isinstance(expires_in, str) and expires_in.isdigit()):
            expires_at = now + timedelta(seconds=float(expires_in))
        scope = payload.get("scope")
        if isinstance(scope, list):
            scope = " ".join(str(s) for s in scope)
        return cls(
            access_token=str(payload["access_token"]),
            refresh_token=payload.get("refresh_token") or fallback_refresh_token,
            expires_at=expires_at,
            scope=scope if scope else None,
            token_type=str(payload.get("token_type") or "Bearer"),
        )

    def expires_within(self, seconds: float, now: datetime | None = None) -> bool:
        """True when the access token expires within `seconds` (False when the expiry is unknown)."""
        if self.expires_at is None:
            return False
        return self.expires_at - (now or utcnow()) <= timedelta(seconds=seconds)


class AccountIdentity(BaseModel):
    """Who a token belongs to on the platform: the stable external id, a display name, and extras."""

    model_config = ConfigDict(frozen=True)

    external_id: str
    display_name: str | None = None
    extra: dict[str, Any] = Field(default_factory=dict)


class MetricPoint(BaseModel):
    """One metric value for one day. `value=None` means *not provided by the platform* (see `note`), never 0."""

    model_config = ConfigDict(frozen=True)

    metric: str
    day: date
    value: int | float | None
    note: str | None = None
    raw: dict[str, Any] = Field(default_factory=dict)

    @classmethod
    def missing(cls, metric: str, day: date, raw: dict[str, Any] | None = None, why: str | None = None) -> MetricPoint:
        """A point for a value the platform did not provide."""
        note = f"{NOT_PROVIDED} ({why})" if why else NOT_PROVIDED
        return cls(metric=metric, day=day, value=None, note=note, raw=raw or {})


class PreviousPoint(BaseModel):
    """A metric point of the account's last snapshot before the day being fetched, as the sync stored it in
    public.metric_snapshots: for a client whose daily flow is the change since that snapshot (see
    `ProviderClient.previous_point_metric`)."""

    model_config = ConfigDict(frozen=True)

    day: date
    taken_at: datetime
    raw: dict[str, Any] = Field(default_factory=dict)


class ProviderModel(BaseModel):
    """Base of the models of documented provider responses: extra fields ignored, missing ones None."""

    model_config = ConfigDict(extra="ignore", populate_by_name=True)


# --------------------------------------------------------------------------------------------- PKCE


def generate_code_verifier(length: int = 64) -> str:
    """A random PKCE code verifier of `length` unreserved characters (RFC 7636: 43 to 128)."""
    if not 43 <= length <= 128:
        raise ValueError("a PKCE code verifier must be 43 to 128 characters long")
    return secrets.token_urlsafe(length)[:length]


def code_challenge_s256(verifier: str) -> str:
    """The S256 code challenge of a verifier: base64url(sha256(verifier)) without padding."""
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


class PkcePair(BaseModel):
    """A PKCE verifier (kept server-side with the OAuth state) and its S256 challenge (sent to the provider)."""

    model_config = ConfigDict(frozen=True)

    verifier: str = Field(repr=False)
    challenge: str
    method: str = "S256"

    @classmethod
    def new(cls) -> PkcePair:
        """A fresh random pair."""
        verifier = generate_code_verifier()
        return cls(verifier=verifier, challenge=code_challenge_s256(verifier))


# --------------------------------------------------------------------------------------------- helpers


def days_between(start: date, end: date) -> list[date]:
    """Every day from `start` to `end`, both included."""
    check_range(start, end)
    return [start + timedelta(days=i) for i in range((end - start).days + 1)]


def check_range(start: date, end: date) -> None:
    """Reject an inverted date range."""
    if start > end:
        raise ValueError(f"start {start} is after end {end}")


def widen_for_reporting_lag(start: date, end: date, lag_days: int) -> tuple[date, date]:
    """(start, end) widened so the last `lag_days` days before `end` are fetched again.

    For platforms whose daily numbers settle late (YouTube Analytics lags 48-72 h, Instagram insights up
    to 48 h): re-fetching the trailing window lets an idempotent upsert fill or correct those days.
    """
    check_range(start, end)
    if lag_days <= 0:
        return start, end
    return min(start, end - timedelta(days=lag_days)), end


def require_origin(url: str, base_url: str, provider: str) -> str:
    """`url` if it is on the same scheme and host as `base_url` (paging links are followed with a token)."""
    target, base = httpx.URL(url), httpx.URL(base_url)
    if (target.scheme, target.host) != (base.scheme, base.host):
        raise ProviderError(provider, f"refusing to follow a paging link to another host ({target.host})")
    return url


def to_int(value: Any) -> int | None:
    """An int from a number or a numeric string (YouTube sends counts as strings); None otherwise."""
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return int(value) if value.is_integer() else None
    if isinstance(value, str) and re.fullmatch(r"\s*-?\d+\s*", value):
        return int(value)
    return None


def to_number(value: Any) -> int | float | None:
    """An int or float from a number or numeric string; None otherwise."""
    as_int = to_int(value)
    if as_int is not None:
        return as_int
    if isinstance(value, float):
        return value
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return None
    return None


# --------------------------------------------------------------------------------------------- the interface


class ProviderClient(ABC):
    """The interface all provider clients implement, plus the HTTP plumbing they share.

    Subclasses set `name`, implement the five operations, and may override `_classify_error` to map
    provider-specific error bodies (Google reasons, Graph API codes) onto the typed errors.
    """

    name: ClassVar[str]
    reporting_lag_days: ClassVar[int] = 0
    """Days of trailing data the platform may still revise; see `sync_window`."""
    refresh_tokens_single_use: ClassVar[bool] = False
    """True when a refresh spends the refresh token (the refreshed TokenSet must replace the stored one)."""
    default_scopes: ClassVar[tuple[str, ...]] = ()
    """Scopes asked for when the caller names none."""
    refreshes_with_access_token: ClassVar[bool] = False
    """True when the access token itself is exchanged for a new one (no refresh token exists)."""
    refresh_margin_seconds: ClassVar[float] = 300
    """Refresh this long before the access token expires."""
    quota: ClassVar[QuotaSpec | None] = None
    """The provider's quota model (arti.quotas): its documented limits and what a daily sync spends."""
    previous_point_metric: ClassVar[str | None] = None
    """Set by a client whose daily flow is the change since its previous snapshot (TikTok: views summed over recent
    videos): the metric whose stored point, raw included, the sync hands back as `fetch_metrics(previous=...)`."""

    def __init__(
        self,
        client_id: str,
        client_secret: str,
        http: httpx.AsyncClient | None = None,
        *,
        clock: Clock = utcnow,
        scopes: tuple[str, ...] | None = None,
        authorize_base: str | None = None,
    ) -> None:
        if not client_id or not client_secret:
            raise ValueError(f"{self.name}: client_id and client_secret are required")
        self.client_id = client_id
        self._client_secret = client_secret
        self._owns_http = http is None
        self.http = http if http is not None else httpx.AsyncClient(timeout=httpx.Timeout(20.0))
        self.clock = clock
        self.scopes = scopes if scopes is not None else self.default_scopes
        self.observer: CallObserver | None = None
        """Set by the sync job: every request passes its quota gate (pacing, budgets, blocks)."""
        self.authorize_base = authorize_base.rstrip("/") if authorize_base else None
        """Where the browser is sent for consent instead of the provider: `{base}/{name}/authorize`. Only the local
        provider sandbox sets it (Settings.provider_authorize_base, embedded mode with ARTI_PROVIDER_SANDBOX=1)."""

    def __repr__(self) -> str:
        return f"{type(self).__name__}(client_id={self.client_id!r})"

    async def aclose(self) -> None:
        """Close the HTTP client if this client created it (an injected one belongs to the caller)."""
        if self._owns_http:
            await self.http.aclose()

    async def __aenter__(self) -> ProviderClient:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    def _authorize_endpoint(self, documented: str) -> str:
        """The consent page: the provider's documented URL, or the sandbox's when `authorize_base` is set."""
        return f"{self.authorize_base}/{self.name}/authorize" if self.authorize_base else documented

    # -- the five operations

    @abstractmethod
    def authorize_url(self, state: str, redirect_uri: str, code_challenge: str | None = None) -> str:
        """The URL to send the user to for consent. `code_challenge` is an S256 PKCE challenge."""

    @abstractmethod
    async def exchange_code(self, code: str, redirect_uri: str, code_verifier: str | None = None) -> TokenSet:
        """Exchange the authorization code from the callback for tokens."""

    @abstractmethod
    async def refresh(self, token_set: TokenSet) -> TokenSet:
        """New tokens from `token_set`. Persist the result, replacing the old set, before using it."""

    @abstractmethod
    async def identity(self, access_token: str) -> AccountIdentity:
        """The platform account the token belongs to."""

    @abstractmethod
    async def fetch_metrics(self, access_token: str, external_id: str, start: date, end: date, *,
                            public: Any = UNFETCHED) -> list[MetricPoint]:
        """Metric points for the account `external_id` from `start` to `end` (both included).

        `public`: the account's public data already fetched by `fetch_public` (for a provider that batches it),
        or UNFETCHED to let the client fetch it.
        """

    @property
    def public_batch_size(self) -> int:
        """How many accounts one `fetch_public` call covers (1: the provider has no such batch call)."""
        spec = self.quota
        return spec.batch_size if spec is not None and spec.batched else 1

    async def fetch_public(self, access_token: str, external_ids: list[str]) -> dict[str, Any]:
        """The public data of several accounts in one call: id -> the provider's object, or None when it has
        nothing for that id (deleted, or no longer public). Only for providers with `public_batch_size` > 1."""
        raise NotImplementedError(f"{self.name} fetches no public data by the batch")

    def usage_report(self, response: httpx.Response) -> UsageReport | None:
        """What a response says about the provider's limits (usage headers); None when nothing."""
        return None

    def sync_window(self, start: date, end: date) -> tuple[date, date]:
        """The range a sync should fetch to cover `start..end` given this platform's reporting lag."""
        return widen_for_reporting_lag(start, end, self.reporting_lag_days)

    # -- HTTP plumbing

    def _now(self) -> datetime:
        return self.clock()

    async def _request(
        self,
        method: str,
        url: str,
        *,
        secret_values: Iterable[str | None] = (),
        **kwargs: Any,
    ) -> httpx.Response:
        """Send a request; network failures become `ProviderUnavailable`, non-2xx answers typed errors."""
        secret_list = [*secret_values, self._client_secret]
        if self.observer is not None:
            await self.observer.before(method, url)
        try:
            response = await self.http.request(method, url, **kwargs)
        except httpx.TimeoutException as exc:
            raise ProviderUnavailable(self.name, f"timed out: {redact(str(exc), secret_list)}") from None
        except httpx.TransportError as exc:
            detail = redact(str(exc) or type(exc).__name__, secret_list)
            raise ProviderUnavailable(self.name, f"network error: {detail}") from None
        if self.observer is not None:
            await self.observer.after(method, url, response, self.usage_report(response))
        if not response.is_success:
            raise self._error_from_response(response, secret_list)
        return response

    async def _json(self, method: str, url: str, *, secret_values: Iterable[str | None] = (), **kwargs: Any) -> Any:
        """`_request` and decode the JSON body (an undecodable 2xx body is `ProviderUnavailable`)."""
        secret_list = list(secret_values)
        response = await self._request(method, url, secret_values=secret_list, **kwargs)
        try:
            return response.json()
        except ValueError:
            raise ProviderUnavailable(
                self.name, "answered with a body that is not JSON", status=response.status_code
            ) from None

    def _parse(self, model: type[ProviderModelT], payload: Any) -> ProviderModelT:
        """Validate a payload against a documented-response model; a shape mismatch is a `ProviderError`."""
        try:
            return model.model_validate(payload)
        except ValidationError as exc:
            fields = ", ".join(".".join(str(p) for p in err["loc"]) or "(root)" for err in exc.errors()[:5])
            raise ProviderError(self.name, f"unexpected {model.__name__} response (fields: {fields})") from None

    def _token_set(self, payload: Any, *, fallback_refresh_token: str | None = None) -> TokenSet:
        """A TokenSet from a token endpoint's JSON answer."""
        if not isinstance(payload, Mapping) or not payload.get("access_token"):
            raise ProviderError(self.name, "token response carries no access_token")
        return TokenSet.from_token_response(payload, now=self._now(), fallback_refresh_token=fallback_refresh_token)

    def _error_from_response(self, response: httpx.Response, secret_values: Iterable[str | None]) -> ProviderError:
        """Map a non-2xx response to a typed error, with the provider's message (redacted)."""
        secret_list = list(secret_values)
        try:
            body: Any = response.json()
        except ValueError:
            body = None
        message = redact(self._error_message(body) or response.reason_phrase or "error", secret_list)
        specific = self._classify_error(response, body, message)
        if specific is not None:
            return specific
        status = response.status_code
        oauth_error = body.get("error") if isinstance(body, Mapping) else None
        if oauth_error == "invalid_client":
            # Our app's credentials are wrong: not something the account owner can fix by re-connecting.
            return ProviderError(self.name, f"client credentials rejected: {message}", status=status)
        if status == 401 or oauth_error == "invalid_grant":
            return ProviderAuthError(self.name, message, status=status)
        if status == 429:
            return self._rate_limited(response, message)
        if status >= 500:
            return ProviderUnavailable(self.name, message, status=status)
        return ProviderError(self.name, message, status=status)

    def _rate_limited(
        self, response: httpx.Response, message: str, *, default_seconds: float | None = None,
        applies_to: str = "app", scope: str | None = None,
    ) -> ProviderRateLimited:
        """A ProviderRateLimited using the response's Retry-After header, else `default_seconds`."""
        seconds = parse_retry_after(response.headers.get("Retry-After"), self._now())
        return ProviderRateLimited(
            self.name,
            message,
            status=response.status_code,
            retry_after_seconds=seconds if seconds is not None else default_seconds,
            applies_to=applies_to,
            scope=scope,
        )

    def _classify_error(self, response: httpx.Response, body: Any, message: str) -> ProviderError | None:
        """Provider-specific mapping of an error response; None falls back to the status-based mapping."""
        return None

    @staticmethod
    def _error_message(body: Any) -> str | None:
        """The human message of the common error shapes (OAuth, Google/Graph/Spotify `error` objects)."""
        if not isinstance(body, Mapping):
            return None
        error = body.get("error")
        if isinstance(error, Mapping):
            text = error.get("message")
            return str(text) if text else None
        if isinstance(error, str):
            description = body.get("error_description")
            return f"{error}: {description}" if description else error
        if body.get("message"):
            return str(body["message"])
        return None
