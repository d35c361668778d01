"""Webhook delivery: POST one outbox event to one endpoint, signed, with retries until a horizon.

Deliveries are created in SQL, in the transaction that produced the event (see the outbox_webhooks
migration), so this module only sends: `deliver()` makes one attempt of one delivery. The job that
calls it is the endpoint's drain (jobs/webhook_drain.py: one job per endpoint, queue `webhooks`,
lock `webhook-endpoint:<endpoint id>`, sending the endpoint's due deliveries oldest first):

* the delivery is claimed only while `pending` (attempts + 1, one attempt row opened);
* the URL is checked again, host and every address it resolves to, by the same SQL rule as when it
  was saved (private.webhook_host_kind, private.ip_address_kind, private.webhook_destination_problem,
  asked on the job's connection; there is no Python copy of the address table): only global unicast
  passes, plus loopback with webhooks.allow_loopback_http and private addresses for hosts listed in
  webhooks.allowed_private_hosts; a refusal is recorded. The request is then sent to the address that
  was checked (Host header and TLS SNI keep the name), so a DNS answer cannot change between the
  check and the connection; redirects are not followed;
* 2xx -> delivered; RETRYABLE_STATUSES (404, 408, 425, 429), 5xx and network errors -> retried with
  exponential backoff (or the receiver's Retry-After), until the delivery's retry_until, after which it
  is dead: `deliver` records the next attempt's time and raises RetryLater, and the drain pauses the
  endpoint until then; any other status -> failed, no retry. 404 is retried because a receiver that is
  starting answers it before its routes are mounted (n8n does, for ~5 s: tests/e2e/test_n8n.py);
* at least once: a worker killed mid-request leaves the delivery pending and the attempt open; the
  job is re-queued (stalled-job sweep) and sends the same event id again.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import email.utils
import ipaddress
import json
import logging
import random
import socket
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
import procrastinate
import psycopg
from psycopg.rows import dict_row

from arti.settings import Settings, get_settings
from arti.webhook_signing import signature_header
from jobs.app import app

logger = logging.getLogger(__name__)

USER_AGENT = "ARTi-Webhooks/1.0"
EXCERPT_CHARS = 1000
MAX_ADDRESSES_TRIED = 3
INFRA_RETRIES = 5
RETRYABLE_STATUSES = frozenset({404, 408, 425, 429})
"""4xx answers retried like 5xx: not found (a receiver starting before its routes are mounted, e.g. n8n),
request timeout, too early, too many requests. Every other 4xx refuses the request itself: failed at once."""

Resolver = Callable[[str, int], Awaitable[list[str]]]


# -- settings ---------------------------------------------------------------------------------------

@dataclass(frozen=True)
class WebhookConfig:
    """The webhooks.* keys of private.settings, read at each delivery."""

    allow_loopback_http: bool = False
    allowed_private_hosts: frozenset[str] = frozenset()
    retry_base_seconds: float = 30.0
    retry_max_interval_seconds: float = 3600.0
    timeout_seconds: float = 10.0

    @classmethod
    def from_rows(cls, values: dict[str, str]) -> WebhookConfig:
        def number(key: str, default: float) -> float:
            try:
                return max(0.0, float(values.get(key, default)))
            except ValueError:
                return default

        hosts = {h.strip().lower().rstrip(".") for h in values.get("webhooks.allowed_private_hosts", "").split(",")}
        return cls(
            allow_loopback_http=values.get("webhooks.allow_loopback_http", "false").strip().lower()
            in ("true", "on", "yes", "1"),
            allowed_private_hosts=frozenset(h for h in hosts if h),
            retry_base_seconds=number("webhooks.retry_base_seconds", 30.0),
            retry_max_interval_seconds=number("webhooks.retry_max_interval_seconds", 3600.0),
            timeout_seconds=max(0.5, number("webhooks.timeout_seconds", 10.0)),
        )


async def load_config(conn: psycopg.AsyncConnection[Any]) -> WebhookConfig:
    cur = await conn.execute("select key, value from private.settings where key like 'webhooks.%%'")
    return WebhookConfig.from_rows({row["key"]: row["value"] for row in await cur.fetchall()})


# -- SSRF guard -------------------------------------------------------------------------------------

class DestinationRefused(Exception):
    """The endpoint resolves to an address webhooks may not reach (not retried)."""


class DestinationUnavailable(Exception):
    """The endpoint's name does not resolve right now (retried)."""


@dataclass(frozen=True)
class Destination:
    url: httpx.URL
    host: str
    addresses: list[str] = field(default_factory=list)

    @property
    def netloc(self) -> str:
        return self.url.netloc.decode("ascii")


async def system_resolver(host: str, port: int) -> list[str]:
    """The host's addresses, as the operating system resolves them (in its order, deduplicated)."""
    loop = asyncio.get_running_loop()
    infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    seen: list[str] = []
    for info in infos:
        address = str(info[4][0]).split("%", 1)[0]
        if address not in seen:
            seen.append(address)
    return seen


HOST_SQL = """
select kind, private.webhook_destination_problem(kind, %(loopback)s, %(listed)s) as problem
from (select private.webhook_host_kind(%(host)s) as kind) as h
"""

ADDRESSES_SQL = """
select a.address, k.kind, private.webhook_destination_problem(k.kind, %(loopback)s, %(listed)s) as problem
from unnest(%(addresses)s::text []) with ordinality as a (address, n)
cross join lateral (select private.ip_address_kind(a.address::inet) as kind) as k
order by a.n
"""

HTTP_REFUSAL = ("refused: only https:// URLs are allowed (http:// only for loopback in development and for hosts "
                "listed in webhooks.allowed_private_hosts)")


def _address(text: str) -> str | None:
    """The resolver's answer as a plain address (any %zone dropped), None when it is not an IP address."""
    try:
        return str(ipaddress.ip_address(text.split("%", 1)[0]))
    except ValueError:
        return None


async def resolve_destination(url: str, config: WebhookConfig, conn: psycopg.AsyncConnection[Any],
                              resolver: Resolver | None = None) -> Destination:
    """Check the URL's host and every address it resolves to; raise DestinationRefused with the reason.

    The rule is SQL's, asked on `conn`: private.webhook_host_kind for the host (the check made when the URL was
    saved) and private.ip_address_kind for each resolved address, judged by private.webhook_destination_problem.
    """
    try:
        parsed = httpx.URL(url)
        host = parsed.raw_host.decode("ascii").lower().rstrip(".")
    except (httpx.InvalidURL, UnicodeDecodeError) as exc:
        raise DestinationRefused(f"refused: invalid URL ({exc})") from None
    if parsed.scheme not in ("https", "http"):
        raise DestinationRefused(f"refused: only https:// URLs are allowed (not {parsed.scheme}://)")
    if not host:
        raise DestinationRefused("refused: the URL has no host")
    if parsed.userinfo:
        raise DestinationRefused("refused: the URL contains credentials")
    host = host.strip("[]")
    params: dict[str, Any] = {"host": host, "loopback": config.allow_loopback_http,
                              "listed": host in config.allowed_private_hosts}
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(HOST_SQL, params)
        judged = await cur.fetchone()
    assert judged is not None
    if judged["problem"]:
        raise DestinationRefused(f"refused: {host}, {judged['problem']}")
    literal = _address(host)  # names and the numeric forms refused above do not parse
    if literal is not None:
        addresses = [literal]
    else:
        if parsed.scheme == "http" and not params["listed"] and judged["kind"] != "loopback":
            raise DestinationRefused(HTTP_REFUSAL)
        port = parsed.port or (443 if parsed.scheme == "https" else 80)
        try:
            answers = await (resolver or system_resolver)(host, port)
        except (OSError, UnicodeError) as exc:
            raise DestinationUnavailable(f"cannot resolve {host}: {exc}") from None
        if not answers:
            raise DestinationUnavailable(f"cannot resolve {host}: no address")
        addresses = []
        for answer in answers:
            address = _address(answer)
            if address is None:
                raise DestinationRefused(f"refused: {host} resolves to {answer!r}, which is not an IP address")
            if address not in addresses:
                addresses.append(address)
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(ADDRESSES_SQL, {**params, "addresses": addresses})
        rows = await cur.fetchall()
    for row in rows:
        if row["problem"]:
            where = host if row["address"] == literal else f"{host} resolves to {row['address']}"
            raise DestinationRefused(f"refused: {where}, {row['problem']}")
    if parsed.scheme == "http" and not params["listed"] and {row["kind"] for row in rows} != {"loopback"}:
        raise DestinationRefused(HTTP_REFUSAL)
    return Destination(url=parsed, host=host, addresses=addresses)


# -- sending ----------------------------------------------------------------------------------------

@dataclass
class Outcome:
    """What one attempt produced."""

    kind: str  # delivered | retry | failed | refused
    status_code: int | None = None
    error: str | None = None
    excerpt: str | None = None
    retry_after: float | None = None


class RetryLater(Exception):
    """Raised by the task so Procrastinate re-schedules the job at `retry_at`."""

    def __init__(self, retry_at: dt.datetime, reason: str) -> None:
        super().__init__(reason)
        self.retry_at = retry_at


class WebhookRetry(procrastinate.BaseRetryStrategy):
    """RetryLater -> at its time (backoff or Retry-After, decided with the delivery); database or OS errors
    before sending -> a few quick retries; anything else is not retried (the sweep re-queues the delivery)."""

    def get_retry_decision(self, *, exception: BaseException, job: procrastinate.jobs.Job) -> Any:
        if isinstance(exception, RetryLater):
            return procrastinate.RetryDecision(retry_at=exception.retry_at)
        if isinstance(exception, psycopg.OperationalError | OSError) and job.attempts < INFRA_RETRIES:
            return procrastinate.RetryDecision(retry_in={"seconds": 5 * 2 ** job.attempts})
        return None


def retry_after_seconds(value: str | None, now: float | None = None) -> float | None:
    """Retry-After as seconds (delta-seconds or HTTP-date); None when absent or unreadable."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


def backoff_seconds(attempt: int, config: WebhookConfig) -> float:
    """Exponential backoff with +-20% jitter: base, 2 base, 4 base... capped at the maximum interval."""
    delay = min(config.retry_max_interval_seconds, config.retry_base_seconds * 2 ** max(0, attempt - 1))
    return delay * random.uniform(0.8, 1.2)


def envelope(claim: dict[str, Any]) -> str:
    """The JSON body: {"id", "type", "created_at", "org_id", "data"} (compact, UTF-8)."""
    created: dt.datetime = claim["event_created_at"]
    return json.dumps({
        "id": str(claim["event_id"]),
        "type": claim["event_type"],
        "created_at": created.astimezone(dt.UTC).isoformat().replace("+00:00", "Z"),
        "org_id": str(claim["org_id"]),
        "data": claim["payload"],
    }, separators=(",", ":"), ensure_ascii=False, default=str)


async def _read_excerpt(response: httpx.Response) -> str:
    chunks: list[bytes] = []
    size = 0
    async for chunk in response.aiter_bytes():
        chunks.append(chunk)
        size += len(chunk)
        if size >= EXCERPT_CHARS * 4:
            break
    return b"".join(chunks).decode("utf-8", errors="replace").replace("\x00", "")[:EXCERPT_CHARS]


async def send(client: httpx.AsyncClient, destination: Destination, body: str, headers: dict[str, str],
               timeout: float) -> Outcome:
    """POST to the checked addresses in turn (next one only when connecting fails) and classify the answer."""
    request_headers = {**headers, "Host": destination.netloc}
    extensions = {"sni_hostname": destination.host} if destination.url.scheme == "https" else {}
    last: Exception | None = None
    for address in destination.addresses[:MAX_ADDRESSES_TRIED]:
        try:
            async with asyncio.timeout(timeout * 3), client.stream(
                "POST", destination.url.copy_with(host=address), content=body.encode("utf-8"),
                headers=request_headers, extensions=extensions, timeout=timeout,
            ) as response:
                excerpt = await _read_excerpt(response)
        except httpx.ConnectError as exc:
            last = exc
            continue
        except (httpx.TimeoutException, TimeoutError):
            return Outcome("retry", error=f"timed out after {timeout:g}s")
        except (httpx.HTTPError, OSError) as exc:
            return Outcome("retry", error=f"{type(exc).__name__}: {exc}".rstrip(": "))
        code = response.status_code
        if 200 <= code < 300:
            return Outcome("delivered", status_code=code, excerpt=excerpt)
        if code in RETRYABLE_STATUSES or code >= 500:
            return Outcome("retry", status_code=code, error=f"HTTP {code}", excerpt=excerpt,
                           retry_after=retry_after_seconds(response.headers.get("retry-after")))
        if 300 <= code < 400:
            return Outcome("failed", status_code=code, excerpt=excerpt,
                           error=f"HTTP {code}: redirects are not followed; set the endpoint's final URL")
        return Outcome("failed", status_code=code, error=f"HTTP {code}", excerpt=excerpt)
    return Outcome("retry", error=f"connection failed: {type(last).__name__}: {last}".rstrip(": "))


# -- the delivery -----------------------------------------------------------------------------------

CLAIM_SQL = """
with claimed as (
    update public.webhook_deliveries as d set attempts = d.attempts + 1
    where d.id = %(id)s and d.status = 'pending'
    returning d.*
)
select c.id, c.org_id, c.endpoint_id, c.event_id, c.event_type, c.attempts, e.url, e.active, s.secret,
       case when s.previous_valid_until > now() then s.previous_secret end as previous_secret,
       o.payload, o.created_at as event_created_at
from claimed as c
join public.webhook_endpoints as e on e.id = c.endpoint_id
join private.webhook_secrets as s on s.endpoint_id = c.endpoint_id
join private.outbox as o on o.id = c.event_id
"""

FINISH_SQL = """
update public.webhook_deliveries as d set
    status = case
        when %(kind)s = 'delivered' then 'delivered'
        when %(kind)s in ('failed', 'refused') then 'failed'
        when clock_timestamp() + make_interval(secs => %(wait)s) > d.retry_until then 'dead'
        else 'pending' end::public.webhook_delivery_status,
    next_attempt_at = case
        when %(kind)s = 'retry' and clock_timestamp() + make_interval(secs => %(wait)s) <= d.retry_until
        then clock_timestamp() + make_interval(secs => %(wait)s) end,
    delivered_at = case when %(kind)s = 'delivered' then clock_timestamp() end,
    last_status_code = %(code)s,
    last_error = case
        when %(kind)s = 'delivered' then null
        when %(kind)s = 'retry' and clock_timestamp() + make_interval(secs => %(wait)s) > d.retry_until
        then format('gave up after %%s attempts (retry horizon reached): %%s', d.attempts, %(error)s::text)
        else %(error)s::text end
where d.id = %(id)s
returning d.status::text as status, d.next_attempt_at, d.last_error
"""


async def _claim(conn: psycopg.AsyncConnection[Any], delivery_id: str) -> tuple[dict[str, Any], int] | None:
    async with conn.transaction():
        cur = await conn.execute(CLAIM_SQL, {"id": delivery_id})
        claim = await cur.fetchone()
        if claim is None:
            return None
        await conn.execute(
            "update public.webhook_delivery_attempts set outcome = 'interrupted', finished_at = now(), "
            "error = 'the worker stopped during this attempt; the job was re-run' "
            "where delivery_id = %s and outcome is null", (delivery_id,))
        cur = await conn.execute(
            "insert into public.webhook_delivery_attempts (delivery_id, org_id, attempt) values (%s, %s, %s) "
            "returning id", (delivery_id, claim["org_id"], claim["attempts"]))
        row = await cur.fetchone()
        assert row is not None
        return claim, int(row["id"])


async def _finish(conn: psycopg.AsyncConnection[Any], claim: dict[str, Any], attempt_id: int, outcome: Outcome,
                  config: WebhookConfig, started: float) -> dict[str, Any] | None:
    """Record the attempt's outcome; None when the delivery is gone (its endpoint was deleted meanwhile)."""
    wait = 0.0
    if outcome.kind == "retry":
        wait = outcome.retry_after if outcome.retry_after is not None else backoff_seconds(claim["attempts"], config)
    async with conn.transaction():
        cur = await conn.execute(FINISH_SQL, {"id": claim["id"], "kind": outcome.kind, "wait": wait,
                                              "code": outcome.status_code, "error": outcome.error})
        row = await cur.fetchone()
        if row is None:  # deleted with its endpoint (and its attempts) while the request was in flight
            return None
        attempt_outcome = "dead" if row["status"] == "dead" else outcome.kind
        await conn.execute(
            "update public.webhook_delivery_attempts set finished_at = now(), duration_ms = %s, status_code = %s, "
            "outcome = %s, error = %s, response_excerpt = %s where id = %s",
            (int((time.monotonic() - started) * 1000), outcome.status_code, attempt_outcome, outcome.error,
             outcome.excerpt, attempt_id))
    return row


async def deliver(delivery_id: str, *, settings: Settings | None = None, http: httpx.AsyncClient | None = None,
                  resolver: Resolver | None = None,
                  conn: psycopg.AsyncConnection[Any] | None = None) -> dict[str, Any]:
    """Make one attempt of a delivery. Raises RetryLater when another attempt is due later.

    `conn` (autocommit, dict rows; the drain's) is used and left open; without it one is opened for the attempt.
    """
    own = conn is None
    if conn is None:
        conn = await psycopg.AsyncConnection.connect((settings or get_settings()).database_url(), autocommit=True,
                                                     row_factory=dict_row)
    try:
        config = await load_config(conn)
        claimed = await _claim(conn, delivery_id)
        if claimed is None:
            return {"skipped": "the delivery is not pending (delivered, failed, dead or deleted)"}
        claim, attempt_id = claimed
        started = time.monotonic()
        outcome = await _attempt(conn, claim, config, http, resolver)
        row = await _finish(conn, claim, attempt_id, outcome, config, started)
    finally:
        if own:
            await conn.close()
    if row is None:
        # Nothing to record or retry: the endpoint was deleted, and its delivery log with it, during the attempt.
        logger.info("webhook delivery %s: cancelled, its endpoint %s was deleted during attempt %s (%s)",
                    delivery_id, claim["endpoint_id"], claim["attempts"], outcome.error or outcome.kind)
        return {"delivery_id": delivery_id, "event_id": str(claim["event_id"]), "attempt": claim["attempts"],
                "status": "cancelled", "reason": "the endpoint was deleted during the attempt",
                "status_code": outcome.status_code}
    result = {"delivery_id": delivery_id, "event_id": str(claim["event_id"]), "attempt": claim["attempts"],
              "status": row["status"], "status_code": outcome.status_code, "error": row["last_error"]}
    if row["status"] == "pending" and row["next_attempt_at"] is not None:
        raise RetryLater(row["next_attempt_at"], f"delivery {delivery_id}: {outcome.error}; retrying")
    return result


async def _attempt(conn: psycopg.AsyncConnection[Any], claim: dict[str, Any], config: WebhookConfig,
                   http: httpx.AsyncClient | None, resolver: Resolver | None) -> Outcome:
    if not claim["active"]:
        return Outcome("failed", error="the endpoint is disabled; enable it and replay the delivery")
    try:
        destination = await resolve_destination(claim["url"], config, conn, resolver)
    except DestinationRefused as exc:
        return Outcome("refused", error=str(exc))
    except DestinationUnavailable as exc:
        return Outcome("retry", error=str(exc))
    body = envelope(claim)
    timestamp = str(int(time.time()))
    headers = {
        "Content-Type": "application/json",
        "User-Agent": USER_AGENT,
        "X-Arti-Event-Id": str(claim["event_id"]),
        "X-Arti-Event-Type": claim["event_type"],
        "X-Arti-Delivery-Id": str(claim["id"]),
        "X-Arti-Attempt": str(claim["attempts"]),
        "X-Arti-Timestamp": timestamp,
        "X-Arti-Signature": signature_header([claim["secret"], claim["previous_secret"]], timestamp, body),
    }
    client = http or httpx.AsyncClient(follow_redirects=False, trust_env=False)
    try:
        return await send(client, destination, body, headers, config.timeout_seconds)
    except Exception as exc:  # an unexpected failure is recorded and retried like a network error
        logger.exception("webhook delivery %s: unexpected error", claim["id"])
        return Outcome("retry", error=f"unexpected error: {type(exc).__name__}: {exc}")
    finally:
        if http is None:
            await client.aclose()


@app.task(name="deliver_webhook", queue="webhooks", retry=WebhookRetry(), pass_context=True)
async def deliver_webhook(context: procrastinate.JobContext, delivery_id: str) -> dict[str, Any]:
    """A job of the former one-job-per-delivery design, still running or retried when the fair-queues
    migration ran: it only makes sure the delivery's endpoint has a drain job, which sends it."""
    settings = get_settings()
    async with await psycopg.AsyncConnection.connect(settings.database_url(), autocommit=True) as conn:
        await conn.execute("select private.defer_webhook_deliveries(array[%s::uuid])", (delivery_id,))
    return {"delivery_id": delivery_id, "queued": "its endpoint's drain job"}


@app.periodic(cron="*/5 * * * *", periodic_id="sweep_webhook_deliveries")
@app.task(name="sweep_webhook_deliveries", queue="webhooks", queueing_lock="sweep_webhook_deliveries")
async def sweep_webhook_deliveries(timestamp: int) -> int:
    """Safety net: endpoints with due deliveries and no drain job get one."""
    settings = get_settings()
    async with await psycopg.AsyncConnection.connect(settings.database_url(), autocommit=True) as conn:
        cur = await conn.execute("select private.sweep_webhook_deliveries()")
        row = await cur.fetchone()
    return int(row[0]) if row else 0
