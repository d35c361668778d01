"""rate_limits: one user floods POST /functions/v1/insights/ask; admitted calls against the configured limit.

The real handlers app (`uvicorn handlers.app:create_app --factory`, one process, as the `handlers` benchmark
starts it) on the bench cluster, in embedded mode with a JWT secret of this run. The analyst of the smallest
bench organization (its retrieval is the cheapest, so the flood is as fast as it gets) sends FLOOD questions,
CONNECTIONS at a time, as fast as the server answers. Before each repetition the user's and the
organization's buckets are emptied (rows deleted), so every repetition starts with a full burst.

* Target (score, <= 1.000): admitted calls / the most the limit allows over the flood, i.e.
  `per_user + floor(seconds / (window / per_user))` with the settings read from private.settings
  (rate_limits.insights_ask.per_user / window_seconds: 10 a minute by default). Above 1 the limit leaks;
  the run also fails when fewer than `per_user` calls were admitted (the limit would be refusing too much)
  or when the refused calls wrote anything (insights counted before and after).
* Informational: the per-request latency of the 429 answers against the admitted ones (a refusal does the
  authentication, one permission query and one rate-limit call, and nothing else).

The questions' insights (and their events) are deleted afterwards, and the buckets too.
"""

from __future__ import annotations

import asyncio
import secrets
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import psycopg
from psycopg.rows import dict_row

from arti.jwt_auth import mint_token
from bench.handlers_http import PATH, serve
from bench.report import Measurement, Result

NAME = "rate_limits"
ROUTE = "/functions/v1/insights/ask"
FLOOD = {"full": 100, "small": 40}
CONNECTIONS = 16


def _subject(conn: psycopg.Connection[Any]) -> dict[str, Any]:
    row = conn.execute(
        "select o.id as org_id, m.user_id from public.organizations as o "
        "join public.memberships as m on m.org_id = o.id and m.role = 'analyst' "
        "where o.slug like 'bench-org-%%' order by o.slug desc limit 1").fetchone()
    if row is None:
        raise RuntimeError("no bench organization with an analyst: generate the dataset first")
    limit = conn.execute("select private.rate_limit_setting('insights_ask.per_user', 10) as n, "
                         "private.rate_limit_setting('insights_ask.window_seconds', 60) as w").fetchone()
    return {**row, "limit": int(limit["n"]), "window": float(limit["w"])}


def _reset(conn: psycopg.Connection[Any], subject: dict[str, Any]) -> None:
    conn.execute("delete from private.request_rate_limits where bucket in (%s, %s)",
                 (f"insights_ask:user:{subject['user_id']}", f"insights_ask:org:{subject['org_id']}"))


def _answers(conn: psycopg.Connection[Any], subject: dict[str, Any]) -> int:
    return int(conn.execute("select count(*) as n from public.insights where org_id = %s and kind = 'answer' "
                            "and created_by = %s", (subject["org_id"], subject["user_id"])).fetchone()["n"])


def _cleanup(conn: psycopg.Connection[Any], subject: dict[str, Any]) -> None:
    _reset(conn, subject)
    conn.execute("delete from private.outbox where org_id = %s and type = 'insight.created' "
                 "and payload ->> 'created_by' = %s", (subject["org_id"], str(subject["user_id"])))
    conn.execute("delete from public.insights where org_id = %s and kind = 'answer' and created_by = %s",
                 (subject["org_id"], subject["user_id"]))


async def _flood(base: str, token: str, org_id: Any, calls: int) -> tuple[float, list[tuple[int, float]]]:
    """`calls` questions, CONNECTIONS at a time; (seconds, [(status, seconds) per request])."""
    limits = httpx.Limits(max_connections=CONNECTIONS, max_keepalive_connections=CONNECTIONS)
    out: list[tuple[int, float]] = []
    gate = asyncio.Semaphore(CONNECTIONS)
    async with httpx.AsyncClient(base_url=base, limits=limits, timeout=60.0,
                                 headers={"Authorization": f"Bearer {token}"}) as client:
        async def one(i: int) -> None:
            async with gate:
                t0 = time.perf_counter()
                response = await client.post(ROUTE, json={"org_id": str(org_id),
                                                          "question": f"How did followers change? ({i})"})
                out.append((response.status_code, time.perf_counter() - t0))
                if response.status_code == 429 and not response.headers.get("retry-after"):
                    raise RuntimeError("a 429 without Retry-After")

        t0 = time.perf_counter()
        await asyncio.gather(*(one(i) for i in range(calls)))
        return time.perf_counter() - t0, out


def run(url: str, dataset: dict[str, Any], *, warmup: int, reps: int, log: Callable[[str], None] = print
        ) -> tuple[list[Result], dict[str, Any]]:
    calls = FLOOD["small" if dataset["spec"]["name"] == "small" else "full"]
    secret = secrets.token_hex(32)
    with psycopg.connect(url, autocommit=True, row_factory=dict_row) as conn:
        subject = _subject(conn)
        _cleanup(conn, subject)
        token = mint_token(secret, str(subject["user_id"]))
        admitted, refused = Measurement(), Measurement()
        floods: list[dict[str, Any]] = []
        try:
            with tempfile.TemporaryDirectory(prefix="arti-bench-ratelimits-") as tmp, \
                    serve("handlers", url, Path(tmp), env={"SUPABASE_JWT_SECRET": secret}) as live_url:
                base = live_url.removesuffix(PATH)
                for i in range(warmup + reps):
                    _reset(conn, subject)
                    before = _answers(conn, subject)
                    seconds, answers = asyncio.run(_flood(base, token, subject["org_id"], calls))
                    written = _answers(conn, subject) - before
                    ok = [s for status, s in answers if status == 200]
                    no = [s for status, s in answers if status == 429]
                    others = sorted({status for status, _ in answers} - {200, 429})
                    if others:
                        raise RuntimeError(f"unexpected statuses {others} (see the handlers log)")
                    allowed = subject["limit"] + int(seconds // (subject["window"] / subject["limit"]))
                    if written != len(ok):
                        raise RuntimeError(f"{len(ok)} questions admitted but {written} insights written")
                    if len(ok) < subject["limit"]:
                        raise RuntimeError(f"only {len(ok)} of the first {subject['limit']} questions admitted")
                    if i >= warmup:
                        admitted.samples.extend(ok)
                        refused.samples.extend(no)
                        floods.append({"seconds": round(seconds, 3), "admitted": len(ok), "refused": len(no),
                                       "allowed_at_most": allowed})
        finally:
            _cleanup(conn, subject)
    total_ok = sum(f["admitted"] for f in floods)
    total_allowed = sum(f["allowed_at_most"] for f in floods)
    params = {"route": ROUTE, "calls_per_flood": calls, "connections": CONNECTIONS, "floods": floods,
              "limit_per_user": subject["limit"], "window_seconds": subject["window"],
              "server": "uvicorn handlers.app:create_app --factory, 1 process, embedded mode",
              "organization": "the smallest bench organization, as its analyst"}
    results = [
        Result(benchmark=NAME, name=f"{NAME}.insights_ask.admitted_vs_limit", kind="score", measured=admitted,
               baseline_name="refused (429) answers", baseline=refused, target_op="<=", target=1.0,
               value=total_ok / total_allowed, params=params,
               note="score = admitted questions / what the per-user limit allows over the flood; timings: "
                    "admitted answers (measured) and 429s (baseline)"),
        Result(benchmark=NAME, name=f"{NAME}.insights_ask.refused_vs_admitted", kind="time", measured=refused,
               baseline_name="admitted (200) answers", baseline=admitted, target_op="<=", target=None, params=params,
               note="informational: median latency of a 429 against an admitted answer, during the flood"),
    ]
    log(f"  {NAME}: {total_ok} of {sum(f['admitted'] + f['refused'] for f in floods)} questions admitted over "
        f"{len(floods)} flood(s), {total_allowed} allowed at most (limit {subject['limit']} per "
        f"{subject['window']:g} s); 429 median {refused.median * 1000:.1f} ms, 200 median "
        f"{admitted.median * 1000:.1f} ms")
    return results, {"floods": floods, "admitted": admitted.as_json(), "refused": refused.as_json()}
