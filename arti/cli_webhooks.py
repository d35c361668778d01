"""`arti webhooks list | replay DELIVERY_ID`: inspect the delivery log and send a delivery again.

Operators' tools: they connect with the database URL (service access, no RLS). Admins do the same
through the API with the replay_webhook_delivery RPC and the webhook_deliveries table.
"""

from __future__ import annotations

import argparse
import json
import uuid
from typing import Any

import psycopg

from arti.cli_args import positive_int
from arti.errors import ArtiError
from arti.settings import Settings

STATUSES = ("pending", "delivered", "failed", "dead")


def _uuid(value: str, what: str) -> str:
    try:
        return str(uuid.UUID(value))
    except ValueError:
        raise ArtiError(f"{value!r} is not a {what} id (a UUID); list deliveries with `arti webhooks list`") from None


def cmd_webhooks_replay(settings: Settings, args: argparse.Namespace) -> int:
    from arti.db import connect

    delivery_id = _uuid(args.delivery_id, "delivery")
    with connect(settings.database_url(), autocommit=True) as conn:
        try:
            row = conn.execute("select private.requeue_webhook_delivery(%s) as r", (delivery_id,)).fetchone()
        except psycopg.Error as exc:
            if exc.sqlstate in ("P0002", "22023", "23505"):
                raise ArtiError(f"cannot replay delivery {delivery_id}: {exc.diag.message_primary}") from None
            raise
    result = row["r"] if row else {}
    print(f"queued delivery {delivery_id} again (event {result.get('event_id')}, was {result.get('previous_status')}, "
          f"{result.get('attempts')} attempt(s) so far); a running `arti worker` sends it")
    return 0


def cmd_webhooks_list(settings: Settings, args: argparse.Namespace) -> int:
    from arti.db import connect

    where, params = ["true"], []
    if args.org:
        where.append("d.org_id = %s")
        params.append(_uuid(args.org, "organization"))
    if args.endpoint:
        where.append("d.endpoint_id = %s")
        params.append(_uuid(args.endpoint, "endpoint"))
    if args.status:
        where.append("d.status = %s::public.webhook_delivery_status")
        params.append(args.status)
    params.append(args.limit)
    with connect(settings.database_url(), autocommit=True) as conn:
        rows: list[dict[str, Any]] = conn.execute(
            "select d.id, d.created_at, d.org_id, d.event_id, d.event_type, d.status::text as status, d.attempts, "
            "d.last_status_code, d.last_error, d.next_attempt_at, d.delivered_at, e.url "
            "from public.webhook_deliveries d join public.webhook_endpoints e on e.id = d.endpoint_id "
            f"where {' and '.join(where)} order by d.created_at desc limit %s", params).fetchall()
    if args.json:
        print(json.dumps(rows, indent=2, default=str))
        return 0
    if not rows:
        print("no webhook deliveries match")
        return 0
    for r in rows:
        code = r["last_status_code"] if r["last_status_code"] is not None else "-"
        line = (f"{r['id']}  {r['created_at']:%Y-%m-%d %H:%M:%S}  {r['event_type']:<20} {r['status']:<9} "
                f"attempts {r['attempts']:<3} http {code!s:<4} {r['url']}")
        if r["last_error"] and r["status"] != "delivered":
            line += f"\n    {r['last_error']}"
        print(line)
    return 0


def add_commands(subparsers: Any) -> None:
    """Register `arti webhooks list` and `arti webhooks replay DELIVERY_ID` on the top-level subparsers."""
    webhooks = subparsers.add_parser("webhooks", help="webhook deliveries: list them, replay one")
    sub = webhooks.add_subparsers(dest="webhooks_command", required=True)
    listing = sub.add_parser("list", help="recent deliveries, newest first")
    listing.add_argument("--org", help="only this organization's deliveries")
    listing.add_argument("--endpoint", help="only this endpoint's deliveries")
    listing.add_argument("--status", choices=STATUSES, help="only deliveries in this status")
    listing.add_argument("--limit", type=positive_int, default=20, help="how many (default 20)")
    listing.add_argument("--json", action="store_true", help="print JSON")
    listing.set_defaults(func=cmd_webhooks_list)
    replay = sub.add_parser("replay", help="queue a new attempt of a delivery (same event id, new signature)")
    replay.add_argument("delivery_id", help="the delivery's id (see `arti webhooks list`)")
    replay.set_defaults(func=cmd_webhooks_replay)
