"""`arti quota`: what the next daily sync needs from each provider, against its quotas and what was spent today.

Per provider and documented limit (private.quota_report): the accounts due at the next daily run, the calls and
units they need, the limit and its window, what was spent in the current window, how many accounts fit the daily
budgets and how many will wait for a reset, and how long the calls take at the allowed rate (the quota floor of a
rolling window). Then the blocks a provider announced, and the accounts that will not fit, with why.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
from typing import Any
from zoneinfo import ZoneInfo

from arti.cli_args import non_negative_int
from arti.settings import Settings


def _when(text: str) -> dt.datetime:
    try:
        value = dt.datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an ISO date and time (e.g. 2026-12-01T02:00Z)") from None
    return value if value.tzinfo else value.replace(tzinfo=dt.UTC)


def _number(value: Any) -> str:
    if value is None:
        return "-"
    number = float(value)
    return f"{number:,.0f}" if number.is_integer() else f"{number:,.2f}"


def _duration(seconds: Any) -> str:
    if seconds is None:
        return "-"
    total = round(float(seconds))
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours} h {minutes:02d} min" if hours else (f"{minutes} min {secs:02d} s" if minutes else f"{secs} s")


def _limit(row: dict[str, Any]) -> str:
    unit = row["unit"]
    if row["resets"] == "daily":
        zone = ZoneInfo(row["reset_time_zone"])
        window = f"day (from 00:00 {dt.datetime.now(zone).tzname()})"
    elif row["window_seconds"] % 3600 == 0:
        window = f"{row['window_seconds'] // 3600} h rolling"
    else:
        window = f"{row['window_seconds']} s rolling"
    per = "account-" if row["applies_to"] == "account" else ""
    if row["quota_limit"] is None:
        return f"{unit}/{per}{window}: no number"
    return f"{_number(row['quota_limit'])} {unit}/{per}{window}"


def report(settings: Settings, at: dt.datetime | None, limit: int) -> dict[str, Any]:
    """The figures `arti quota` prints (also its --json)."""
    from arti.db import connect
    from arti.quotas import ensure_specs, quota_report

    with connect(settings.database_url(), autocommit=True) as conn:
        ensure_specs(conn)
        rows = quota_report(conn, at)
        deferred = conn.execute("select * from private.quota_deferred_accounts(%s, %s)", (at, limit)).fetchall()
        waiting = conn.execute("select count(*) as n from private.sync_plan("
                               "coalesce(%s, private.next_daily_sync_at()), false) where not fits", (at,)).fetchone()
    return {"plan_at": rows[0]["plan_at"] if rows else at, "scopes": rows, "deferred_accounts": deferred,
            "deferred_total": waiting["n"] if waiting else 0}


def cmd_quota(settings: Settings, args: argparse.Namespace) -> int:
    figures = report(settings, args.at, args.limit)
    if args.json:
        print(json.dumps(figures, indent=2, default=str))
        return 0
    plan_at = figures["plan_at"]
    print(f"daily sync at {plan_at:%Y-%m-%d %H:%M %Z}: what each provider's quotas allow "
          "(spent: the current window of each limit)")
    header = (f"{'provider':<11}{'accounts':>9}{'calls':>9}  {'scope':<18}{'limit':<42}{'needs':>9}{'spent':>9}"
              f"{'fit':>8}{'wait':>7}  {'at the allowed rate'}")
    print(header)
    seen: set[str] = set()
    for row in figures["scopes"]:
        first = row["provider"] not in seen
        seen.add(row["provider"])
        lead = (f"{row['provider']:<11}{_number(row['accounts']):>9}{_number(row['calls_needed']):>9}" if first
                else " " * 29)
        rate = _duration(row["pass_seconds"]) if row["units_needed"] else "-"
        print(f"{lead}  {row['scope']:<18}{_limit(row):<42}{_number(row['units_needed']):>9}"
              f"{_number(row['used_today']):>9}{_number(row['fits']) if first else '':>8}"
              f"{_number(row['deferred']) if first else '':>7}  {rate}")
    for row in figures["scopes"]:
        if row["blocked_until"] and row["provider"] in seen:
            seen.discard(row["provider"])
            print(f"blocked: {row['provider']} until {row['blocked_until']:%Y-%m-%d %H:%M %Z}: {row['blocked_reason']}")
    total = figures["deferred_total"]
    if not total:
        print("accounts that will not fit: none")
        return 0
    shown = figures["deferred_accounts"]
    print(f"accounts that will not fit: {total}" + (f" (the first {len(shown)})" if len(shown) < total else ""))
    for row in shown:
        print(f"  {row['provider']:<11}{row['external_id']:<28}{row['account_id']}  waits until "
              f"{row['deferred_until']:%Y-%m-%d %H:%M %Z}: {row['reason']}")
    return 0


def add_commands(sub: Any) -> None:
    quota = sub.add_parser("quota", help="the next daily sync's provider calls against the quotas and today's use")
    quota.add_argument("--at", type=_when, help="plan the daily sync at this time (ISO; default: the next scheduled)")
    quota.add_argument("--limit", type=non_negative_int, default=20,
                       help="how many of the accounts that will not fit to list (default 20)")
    quota.add_argument("--json", action="store_true", help="print the figures as JSON")
    quota.set_defaults(func=cmd_quota)
