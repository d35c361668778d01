"""dashboard_rls: what row-level security costs the dashboard RPCs.

`public.metrics_timeseries(account_ids, 'followers', from, to, 'day')` and
`public.metrics_summary(org_id, from, to)` are called exactly as PostgREST calls them for a signed-in
analyst of an organization — in a transaction, `set local role authenticated` and
`set_config('request.jwt.claims', <claims>, true)` (arti.db.set_request_context) — and, as the
baseline, the same SQL as `service_role`, which bypasses RLS. Only the RPC statement is timed, until
its whole result has reached the client (turning the rows into Python objects is left out: it costs
both sides the same and would only dilute the ratio).

The baseline's claims carry the analyst's `sub` as well: metrics_summary checks membership through
`private.my_org_ids()` (auth.uid()) and refuses a caller without one (42501) — so the two sides run
the same function body and differ only by the RLS policies applied.

Organizations: the largest of the Zipf distribution, one at the 99th percentile of size and a typical
(median) one. The timeseries asks for the organization's first 200 accounts (the RPC's maximum) over
the last 90 days; the summary covers the last 30 days. Analyst and baseline run on two connections
(plans cached per role would otherwise be re-planned at every switch), alternating.

The plan of the analyst's timeseries query (the statement inside the plpgsql function, as cached
after the repetitions) is captured with auto_explain (ANALYZE, BUFFERS, nested statements) and checked
for an index scan on public.metrics.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from datetime import date, timedelta
from typing import Any

import psycopg
from psycopg.rows import dict_row

from arti.db import set_request_context, user_claims
from bench.report import Result, measure_interleaved

NAME = "dashboard_rls"
TARGET = 1.2
TIMESERIES_DAYS = 90
SUMMARY_DAYS = 30
MAX_ACCOUNTS = 200

TIMESERIES_SQL = "select * from public.metrics_timeseries(%(account_ids)s, %(metric)s, %(start)s, %(end)s, 'day')"
SUMMARY_SQL = "select * from public.metrics_summary(%(org_id)s, %(start)s, %(end)s)"

AUTO_EXPLAIN = {
    "log_min_duration": "0",
    "log_analyze": "on",
    "log_buffers": "on",
    "log_timing": "on",
    "log_nested_statements": "on",
    "log_format": "text",
    "log_level": "notice",
}


def pick_orgs(conn: psycopg.Connection[Any]) -> dict[str, dict[str, Any]]:
    """The largest organization, one at the 99th percentile of size and the median one, with their analyst."""
    rows = conn.execute(
        """
        select o.id, o.slug, count(*)::integer as accounts, an.user_id as analyst, u.email as analyst_email
        from public.organizations as o
        inner join public.connected_accounts as ca on ca.org_id = o.id
        inner join lateral (
            select m.user_id from public.memberships as m
            where m.org_id = o.id and m.role = 'analyst' order by m.user_id limit 1
        ) as an on true
        inner join auth.users as u on u.id = an.user_id
        group by o.id, o.slug, an.user_id, u.email
        order by accounts desc, o.slug
        """
    ).fetchall()
    if not rows:
        raise RuntimeError("no organization with an analyst and accounts: generate the dataset first")
    n = len(rows)
    picks = {"largest": rows[0], "p99": rows[min(n - 1, max(1, n // 100))], "typical": rows[n // 2]}
    for label, org in picks.items():
        org["label"] = label
        org["rank"] = rows.index(org) + 1
        org["account_ids"] = [
            r["id"] for r in conn.execute(
                "select id from public.connected_accounts where org_id = %s order by id limit %s",
                (org["id"], MAX_ACCOUNTS),
            ).fetchall()
        ]
    return picks


def _caller(conn: psycopg.Connection[Any], role: str, claims: dict[str, Any], sql: str,
            params: dict[str, Any], counts: list[int]) -> Callable[[], float]:
    def run() -> float:
        with conn.transaction():
            set_request_context(conn, role, claims)
            t0 = time.perf_counter()
            cur = conn.execute(sql, params)  # the whole result has arrived; decoding it into Python is not timed
            seconds = time.perf_counter() - t0
            counts.append(len(cur.fetchall()))
        return seconds

    return run


def capture_plans(conn: psycopg.Connection[Any], role: str, claims: dict[str, Any], sql: str,
                  params: dict[str, Any]) -> list[str]:
    """The auto_explain output (ANALYZE, BUFFERS) of every statement the call runs, nested ones included."""
    messages: list[str] = []

    def keep(diag: psycopg.errors.Diagnostic) -> None:
        if diag.message_primary and "plan:" in diag.message_primary:
            messages.append(diag.message_primary)

    conn.execute("load 'auto_explain'")
    conn.commit()
    conn.add_notice_handler(keep)
    try:
        with conn.transaction():
            for key, value in AUTO_EXPLAIN.items():
                conn.execute(f"set local auto_explain.{key} = '{value}'")
            set_request_context(conn, role, claims)
            conn.execute(sql, params).fetchall()
    finally:
        conn.remove_notice_handler(keep)
    return messages


SCAN = re.compile(
    r"(?P<node>Parallel Seq Scan|Seq Scan|Parallel Index Only Scan|Parallel Index Scan|Index Only Scan|Index Scan"
    r"|Bitmap Heap Scan|Bitmap Index Scan)(?: Backward)?(?: using (?P<using>\S+))? on (?P<on>\S+)"
)
# "->  Index Scan using metrics_pkey on metrics m  (cost=8.33..125.96 rows=9 width=33) (actual time=.. rows=18000 .."
ESTIMATE = re.compile(
    r"(?:->  |^)(?P<node>[A-Z][^(\n]*?)  \(cost=\S+ rows=(?P<est>\d+) width=\d+\) "
    r"\(actual time=\S+ rows=(?P<act>\d+) loops=1\)",
    re.MULTILINE,
)


def analyse_plan(plan: str) -> dict[str, Any]:
    """Which scans touch public.metrics, and what they cost."""
    scans = []
    metrics_indexes = set()
    for m in SCAN.finditer(plan):
        node, using, on = m["node"], m["using"], m["on"]
        if node == "Bitmap Index Scan":
            target, index = ("metrics" if on.startswith("metrics_") else on), on
        else:
            target, index = on, using
        scans.append({"node": node, "relation": target, "index": index})
        if target == "metrics" and index:
            metrics_indexes.add(index)
    on_metrics = [s for s in scans if s["relation"] == "metrics"]
    removed = [int(x) for x in re.findall(r"Rows Removed by Filter: (\d+)", plan)]
    estimates = [
        {"node": m["node"].strip(), "estimated": int(m["est"]), "actual": int(m["act"])}
        for m in ESTIMATE.finditer(plan)
    ]
    worst = max(estimates, key=lambda e: (e["actual"] + 1) / (e["estimated"] + 1), default=None)
    duration = re.search(r"duration: ([\d.]+) ms", plan)
    return {
        "uses_index_scan": any(s["index"] for s in on_metrics),
        "seq_scan_on_metrics": any("Seq Scan" in s["node"] for s in on_metrics),
        "metrics_scans": on_metrics,
        "metrics_indexes": sorted(metrics_indexes),
        "rls_subplan": "my_org_ids" in plan or "SubPlan" in plan or "hashed" in plan,
        "rows_removed_by_filter": sum(removed),
        "generic_plan": bool(re.search(r"(?:Cond|Filter): .*\$\d", plan)),
        "duration_ms": float(duration[1]) if duration else None,
        "sorts_spilled_to_disk": len(re.findall(r"Sort Method: external", plan)),
        "worst_row_estimate": worst,
    }


def _metrics_plan(messages: list[str]) -> str | None:
    """The plan of the statement that reads public.metrics (the function body's query)."""
    candidates = [m for m in messages if "public.metrics as m" in m and "Function Scan" not in m.split("plan:", 1)[1]]
    return candidates[-1] if candidates else None


def run(url: str, dataset: dict[str, Any], *, warmup: int, reps: int, log: Callable[[str], None] = print
        ) -> tuple[list[Result], dict[str, Any]]:
    end = date.fromisoformat(dataset["spec"]["end_day"])
    first = date.fromisoformat(dataset["spec"]["start_day"])
    ts_start = max(first, end - timedelta(days=TIMESERIES_DAYS - 1))
    sum_start = max(first, end - timedelta(days=SUMMARY_DAYS - 1))
    with psycopg.connect(url, autocommit=True, row_factory=dict_row) as conn:
        orgs = pick_orgs(conn)

    results: list[Result] = []
    explain: dict[str, Any] = {"method": "auto_explain (analyze, buffers, nested statements) of the RPC call, "
                               "on the analyst's connection after the repetitions", "plans": {}}
    analyst_conn = psycopg.connect(url, row_factory=dict_row)
    service_conn = psycopg.connect(url, row_factory=dict_row)
    try:
        for label, org in orgs.items():
            analyst = user_claims(str(org["analyst"]), email=org["analyst_email"])
            service = {"role": "service_role", "sub": str(org["analyst"])}
            calls = {
                "timeseries": (TIMESERIES_SQL, {"account_ids": org["account_ids"], "metric": "followers",
                                                "start": ts_start, "end": end}),
                "summary": (SUMMARY_SQL, {"org_id": org["id"], "start": sum_start, "end": end}),
            }
            for fn, (sql, params) in calls.items():
                counts: dict[str, list[int]] = {"analyst": [], "service_role": []}
                measured = measure_interleaved(
                    {
                        "analyst": _caller(analyst_conn, "authenticated", analyst, sql, params, counts["analyst"]),
                        "service_role": _caller(service_conn, "service_role", service, sql, params,
                                                counts["service_role"]),
                    },
                    warmup=warmup, reps=reps,
                )
                if set(counts["analyst"]) != set(counts["service_role"]):
                    raise RuntimeError(f"{fn} for {org['slug']}: the analyst saw {counts['analyst'][0]} rows, "
                                       f"service_role {counts['service_role'][0]}")
                params_json = {
                    "org": org["slug"], "org_rank": org["rank"], "org_accounts": org["accounts"],
                    "rows_returned": counts["analyst"][0],
                    "start": params["start"].isoformat(), "end": end.isoformat(),
                }
                if fn == "timeseries":
                    params_json.update(accounts_requested=len(org["account_ids"]), metric="followers", bucket="day")
                results.append(Result(
                    benchmark=NAME, name=f"{NAME}.{fn}.{label}", kind="time",
                    measured=measured["analyst"], baseline_name="service_role",
                    baseline=measured["service_role"], target_op="<=", target=TARGET, params=params_json,
                ))
                log(f"  {results[-1].name}: analyst {measured['analyst'].median * 1000:.2f} ms, "
                    f"service_role {measured['service_role'].median * 1000:.2f} ms")
                if label == "largest" or (fn == "timeseries" and label == "typical"):
                    for side, conn, role, claims in (("analyst", analyst_conn, "authenticated", analyst),
                                                     ("service_role", service_conn, "service_role", service)):
                        plan = _metrics_plan(capture_plans(conn, role, claims, sql, params))
                        explain["plans"][f"{fn}.{label}.{side}"] = {
                            "plan": plan, **(analyse_plan(plan) if plan else {"uses_index_scan": None}),
                        }
    finally:
        analyst_conn.close()
        service_conn.close()
    main_plan = explain["plans"].get("timeseries.largest.analyst", {})
    explain["analyst_timeseries_uses_index_scan"] = main_plan.get("uses_index_scan")
    explain["findings"] = plan_findings(explain["plans"])
    return results, explain


def plan_findings(plans: dict[str, dict[str, Any]]) -> list[str]:
    """Problems worth reporting, read off the captured plans."""
    findings = []
    for key, p in plans.items():
        if not p.get("plan"):
            findings.append(f"{key}: no plan captured for the query on public.metrics")
            continue
        if p.get("seq_scan_on_metrics"):
            findings.append(f"{key}: sequential scan on public.metrics")
        elif not p.get("uses_index_scan"):
            findings.append(f"{key}: no index scan on public.metrics")
        if p.get("sorts_spilled_to_disk"):
            findings.append(f"{key}: {p['sorts_spilled_to_disk']} sort(s) spilled to disk (external merge; work_mem)")
        worst = p.get("worst_row_estimate")
        if worst and worst["actual"] > 1000 and worst["actual"] > 100 * max(worst["estimated"], 1):
            findings.append(f"{key}: {worst['node']} estimated {worst['estimated']:,} rows, got {worst['actual']:,}"
                            + (" (generic plan cached by plpgsql)" if p.get("generic_plan") else ""))
        if p.get("rows_removed_by_filter", 0) > 10_000:
            findings.append(f"{key}: {p['rows_removed_by_filter']:,} rows read then removed by a filter "
                            f"(index {', '.join(p.get('metrics_indexes') or ['-'])})")
    return findings
