"""Per-user and per-organization rate limits of the expensive routes, shared by every handler process.

The buckets are rows of `private.request_rate_limits` (GCRA: one theoretical arrival time per bucket) and
`private.take_rate_limit(route, user, org)` decides and records a call in one database call, locking the
organization's bucket then the user's: any number of uvicorn processes, on any machines, share the same
limits, and concurrent calls cannot both take the last token.

The limits are `private.settings` keys, read at every call so they can be changed without a restart
(`update private.settings set value = '20' where key = 'rate_limits.insights_ask.per_user'`):

    rate_limits.<route>.per_user        calls per window for one user (0 = no limit)
    rate_limits.<route>.per_org         calls per window for one organization, all its members together
    rate_limits.<route>.window_seconds  the window; a bucket holds `limit` calls and refills one every
                                        window / limit seconds

Routes: `insights_ask` (10 per user and 60 per organization a minute) and `oauth_start` (10 and 30).
A call is taken only once the caller is authenticated and allowed in the organization (so nobody can use
up another organization's budget), before any expensive work. Refused: 429 `{"error": "rate_limited"}` with
`Retry-After` (whole seconds), nothing written.
"""

from __future__ import annotations

import math
import uuid
from typing import Any

from handlers.db import Conn, as_user, become_service, fetch_one
from handlers.errors import HandlerError
from handlers.services import Services

WHAT = {"insights_ask": "questions", "oauth_start": "account connections started"}


async def take(conn: Conn, route: str, user_id: str, org_id: uuid.UUID | None) -> None:
    """Take one call of `route` from the user's and the organization's buckets, or raise the 429.

    `conn` must be the service connection (after `become_service`): the function is granted to no API role.
    """
    row = await fetch_one(conn, "select private.take_rate_limit(%s, %s, %s) as decision", (route, user_id, org_id))
    decision: dict[str, Any] = row["decision"] if row else {}
    if decision.get("allowed"):
        return
    retry_after = max(1, math.ceil(float(decision.get("retry_after") or 1)))
    who = "you" if decision.get("scope") == "user" else "your organization"
    window = float(decision.get("window_seconds") or 60)
    per = "minute" if window == 60 else f"{window:g} seconds"
    raise HandlerError(
        429, "rate_limited",
        f"too many {WHAT.get(route, 'requests')}: {who} may make {decision.get('limit')} per {per}; "
        f"try again in {retry_after} s",
        headers={"Retry-After": str(retry_after)},
    )


async def admit_member(svc: Services, claims: dict[str, Any], org_id: uuid.UUID, *, route: str, permission: str,
                       refusal: str) -> None:
    """In one short transaction of its own: as the user, `permission` in `org_id` (403 `refusal` otherwise),
    then one call of `route` (429 otherwise). Committed at once, so the buckets' row locks are never held
    during the route's work."""
    async with as_user(svc.pool, claims, svc.db_timeout) as conn:
        allowed = await fetch_one(conn, "select private.has_permission(%s, %s) as ok", (org_id, permission))
        if not allowed or not allowed["ok"]:
            raise HandlerError(403, "forbidden", refusal)
        await become_service(conn)
        await take(conn, route, str(claims.get("sub") or ""), org_id)
