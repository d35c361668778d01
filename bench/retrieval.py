"""retrieval: org-filtered vector search through public.search_documents, against exact search and unfiltered HNSW.

The corpus is the dataset's chunks (bench/chunks.py: 1M full size, Zipf-sized organizations, so the
largest holds ~1,000x the chunks of the smallest). Organizations are bucketed by chunk count —
`large` (the top 1% by size), `medium` (the next 9%) and `small` (the remaining 90%). Query vectors
are drawn from each picked organization's own distribution (seeded; a new question about its own data).

Recall (the target): RECALL_ORGS_PER_BUCKET organizations spread evenly over each bucket by size
(largest to smallest), RECALL_QUERIES_PER_ORG queries each (100 per bucket in full size), once each:
`search_documents` in vector mode as the organization's analyst against `exact` below. A query whose
neighbours the graph walk cannot reach scores 0/10, so a small sample can miss such queries
entirely; the failing queries are listed in the result's params.

Latency: ORGS_PER_BUCKET organizations per bucket (its largest, middle and smallest), QUERIES_PER_ORG
queries each (another seed than the recall set), per query in the same run:

* `hnsw` (measured): `public.search_documents(org_id, query, query_embedding, null, 10, 'vector')`
  as the organization's analyst, exactly as bench/dashboard_rls.py calls RPCs (a transaction,
  `set local role authenticated` + `request.jwt.claims`): RLS, the membership check, the HNSW index
  with pgvector 0.8's iterative scan (the `hnsw.*` settings the function carries: iterative scan mode,
  ef_search);
* `exact` (the recall baseline; for the latency set, once per query, for the `direct` rows): the
  same organization filter as service_role with
  `set local enable_indexscan = off` — the planner then reads the organization's rows by bitmap
  scan of the org_id index or a sequential scan and sorts them all by distance: no approximate index;
* `unfiltered` (latency baseline): the same HNSW query without the organization filter, as
  service_role directly on public.documents, asking for as many candidates as search_documents' vector
  mode reads from the index (`match_count`), with the same `hnsw.*` settings as the function.

* `hybrid` (target, issue 20): the same call in mode 'hybrid', what insights/ask runs: the question's full-text
  candidates (ranked among a bounded set of chunks, private.fulltext_candidates) and the vector candidates, fused
  by reciprocal rank; its p95 against `unfiltered`, target <= 2x in every bucket.
* `bound` (informational): the hybrid call with a question at search_documents' input bounds (2000 characters,
  64 search terms: bound_question()), so that a long question is seen to stay cheap; its p95 against `unfiltered`.
* `direct` (informational): the function's `nearest` query as a plain statement as the analyst (RLS,
  custom plan for the org's literal id, the function's `hnsw.*` settings): separates the index from the
  function's plan.

At most 1 warm-up and MAX_PASSES measured passes over the queries, whatever --reps says (samples are
per query). Results: recall@10 over the recall set per bucket (target >= 0.95 in every bucket), and
the p95 latency of `hnsw` against the p95 of `unfiltered` per bucket (target <= 2x). hnsw and unfiltered calls
are interleaved (rotating order), after warm-up passes; only the statement is timed, until its whole
result has arrived. `hnsw.ef_search` and `hnsw.max_scan_tuples` are pgvector's defaults (40 and 20,000)
unless ARTI_BENCH_HNSW_EF_SEARCH / ARTI_BENCH_HNSW_MAX_SCAN_TUPLES set them for the benchmark's sessions
(reported in the results' params). The plan of the function's vector query per bucket is captured with
auto_explain (which index it used: HNSW or the org_id btree), with the index build time from the
dataset's generation.
"""

from __future__ import annotations

import os
import statistics
import time
from collections.abc import Callable
from typing import Any

import psycopg
from psycopg.rows import dict_row

from arti.db import set_request_context, user_claims
from arti.insights import vector_literal
from bench.chunks import METRIC_WORDS, PROVIDER_WORDS, VERBS, ChunkSpace
from bench.dashboard_rls import SCAN, capture_plans
from bench.report import Measurement, Result

NAME = "retrieval"
K = 10
CANDIDATES = K  # what search_documents' vector mode reads from the index (match_count)
TARGET_RECALL = 0.95
TARGET_P95 = 2.0
ORGS_PER_BUCKET = 3  # latency sample
QUERIES_PER_ORG = 5
RECALL_ORGS_PER_BUCKET = 10  # recall sample
RECALL_QUERIES_PER_ORG = 10
RECALL_SALT = 1  # the recall set's queries are drawn with another seed than the latency set's
MAX_PASSES = 5  # measured passes over the queries (samples are per query: 45 per pass), whatever --reps says
QUESTION = "how did followers and plays change"
TARGET_HYBRID_P95 = 2.0


def bound_question() -> str:
    """A question at search_documents' bounds, 2000 characters and 64 search terms: the bench question, the corpus's
    provider, metric and verb words, "week" and "artist" (25 terms), 39 words no chunk holds, then stop words."""
    words = " ".join([QUESTION, *PROVIDER_WORDS, *METRIC_WORDS, *VERBS, "week artist"]).split()
    words = list(dict.fromkeys(words)) + [f"aspect{i}x" for i in range(39)]  # websearch repeats a repeated word
    return (" ".join(words) + " a" * 1000)[:2000]


BUCKETS = ("small", "medium", "large")

SEARCH_SQL = ("select id from public.search_documents(%(org_id)s, %(question)s, %(q)s::extensions.vector, "
              "null, %(k)s, 'vector')")
HYBRID_SQL = SEARCH_SQL.replace("'vector'", "'hybrid'")
EXACT_SQL = ("select id from public.documents where org_id = %(org_id)s and embedding is not null "
             "order by embedding operator(extensions.<=>) %(q)s::extensions.vector, id limit %(k)s")
# search_documents' `nearest` CTE as a plain statement as the analyst (RLS; planned for this org's literal id).
DIRECT_SQL = ("select id from public.documents where org_id = %(org_id)s and embedding is not null "
              "order by embedding operator(extensions.<=>) %(q)s::extensions.vector limit %(k)s")
UNFILTERED_SQL = ("select id from public.documents where embedding is not null "
                  "order by embedding operator(extensions.<=>) %(q)s::extensions.vector limit %(n)s")


def session_settings() -> dict[str, str]:
    """HNSW settings for the benchmark's sessions only (reported); empty = pgvector's defaults."""
    out = {}
    for env, name in (("ARTI_BENCH_HNSW_EF_SEARCH", "hnsw.ef_search"),
                      ("ARTI_BENCH_HNSW_MAX_SCAN_TUPLES", "hnsw.max_scan_tuples")):
        if os.environ.get(env):
            out[name] = str(int(os.environ[env]))
    return out


def function_hnsw_settings(conn: psycopg.Connection[Any]) -> dict[str, str]:
    """The `hnsw.*` settings search_documents carries (SET clauses), applied to the baselines too."""
    row = conn.execute(
        "select proconfig from pg_catalog.pg_proc "
        "where oid = 'public.search_documents(uuid, text, extensions.vector, uuid, integer, text)'::regprocedure"
    ).fetchone()
    pairs = (item.split("=", 1) for item in row["proconfig"] or [])
    return {name: value for name, value in pairs if name.startswith("hnsw.")}


Picks = dict[str, list[dict[str, Any]]]  # bucket -> organizations picked from it


def pick_orgs(conn: psycopg.Connection[Any], *sizes: int) -> tuple[list[Picks], list[dict[str, str]]]:
    """Organizations by chunk count (largest first), bucketed, read once; for each of `sizes`, up to that many
    from each bucket, evenly spread by size. Also the buckets' rank and chunk-count ranges."""
    rows = conn.execute(
        """
        select o.id, o.slug, d.chunks, an.user_id as analyst, u.email as analyst_email
        from public.organizations as o
        inner join (select org_id, count(*)::integer as chunks from public.documents group by org_id) as d
            on d.org_id = o.id
        inner join lateral (
            select m.user_id from public.memberships as m
            where m.org_id = o.id and m.role = 'analyst' order by m.user_id limit 1
        ) as an on true
        inner join auth.users as u on u.id = an.user_id
        order by d.chunks desc, o.slug
        """
    ).fetchall()
    if len(rows) < 3:
        raise RuntimeError("retrieval needs chunks in at least 3 organizations: generate the dataset with chunks")
    n = len(rows)
    large_end = max(1, n // 100)
    medium_end = max(large_end + 1, n // 10)
    ranges = {"large": (0, large_end), "medium": (large_end, medium_end), "small": (medium_end, n)}
    for rank, org in enumerate(rows, start=1):
        org["rank"] = rank
        org["index"] = int(org["slug"].rsplit("-", 1)[1])  # generation order = ChunkSpace's org index
    all_picks: list[Picks] = []
    for per_bucket in sizes:
        picks: Picks = {}
        for bucket in BUCKETS:
            lo, hi = ranges[bucket]
            members = rows[lo:hi]
            if len(members) <= per_bucket:
                picks[bucket] = members
            else:
                step = (len(members) - 1) / (per_bucket - 1)
                picks[bucket] = [members[round(i * step)] for i in range(per_bucket)]
        all_picks.append(picks)
    bucket_ranges = [{"bucket": b, "ranks": f"{ranges[b][0] + 1}-{ranges[b][1]}",
                      "chunks": f"{rows[ranges[b][1] - 1]['chunks']}-{rows[ranges[b][0]]['chunks']}"}
                     for b in BUCKETS]
    return all_picks, bucket_ranges


def _recall(found: list[int], exact: list[int]) -> float:
    """recall@K of `found` against the exact answer (which may hold fewer than K chunks)."""
    return len(set(found) & set(exact)) / max(1, min(K, len(exact)))


def _set_local(conn: psycopg.Connection[Any], settings: dict[str, str]) -> None:
    for name, value in settings.items():
        conn.execute(f"set local {name} = '{value}'")


def _timed(conn: psycopg.Connection[Any], role: str, claims: dict[str, Any], sql: str, params: dict[str, Any],
           local: dict[str, str]) -> tuple[float, list[int]]:
    with conn.transaction():
        set_request_context(conn, role, claims)
        _set_local(conn, local)
        t0 = time.perf_counter()
        cur = conn.execute(sql, params)
        seconds = time.perf_counter() - t0
        return seconds, [r["id"] for r in cur.fetchall()]


def run(url: str, dataset: dict[str, Any], *, warmup: int, reps: int, log: Callable[[str], None] = print
        ) -> tuple[list[Result], dict[str, Any]]:
    spec = dataset["spec"]
    if not spec.get("chunks"):
        raise RuntimeError("the dataset has no chunks (generated with --chunks 0)")
    space = ChunkSpace(spec["seed"])
    reps, warmup = min(reps, MAX_PASSES), min(warmup, 1)
    tuning = session_settings()
    service = {"role": "service_role"}
    # No server-side prepared statements: psycopg would switch a repeated statement to a generic plan
    # after 5 runs, which for an org-filtered query is planned without the organization in view.
    conn_kwargs: dict[str, Any] = {"row_factory": dict_row, "prepare_threshold": None}
    with psycopg.connect(url, autocommit=True, **conn_kwargs) as conn:
        (picks, recall_picks), ranges = pick_orgs(conn, ORGS_PER_BUCKET, RECALL_ORGS_PER_BUCKET)
        pgvector = conn.execute("select extversion from pg_extension where extname = 'vector'").fetchone()
        function_hnsw = function_hnsw_settings(conn)

    def draw(chosen: Picks, per_org: int, salt: int) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        for bucket in BUCKETS:
            for org in chosen[bucket]:
                vectors = space.queries(space.org(org["index"], org["chunks"]), per_org, salt=salt)
                claims = user_claims(str(org["analyst"]), email=org["analyst_email"])
                for qn, v in enumerate(vectors):
                    out.append({"bucket": bucket, "org": org, "claims": claims, "n": qn,
                                "q": vector_literal([float(x) for x in v])})
        return out

    queries = draw(picks, QUERIES_PER_ORG, 0)
    recall_queries = draw(recall_picks, RECALL_QUERIES_PER_ORG, RECALL_SALT)

    analyst_conn = psycopg.connect(url, autocommit=True, **conn_kwargs)
    service_conn = psycopg.connect(url, autocommit=True, **conn_kwargs)
    try:
        for c in (analyst_conn, service_conn):
            c.execute("select '[1]'::extensions.vector")  # loads pgvector, so its settings exist
            for name, value in tuning.items():
                c.execute(f"set {name} = '{value}'")
        effective = {k: service_conn.execute(f"show {k}").fetchone()[k] for k in
                     ("hnsw.ef_search", "hnsw.max_scan_tuples")}

        # Recall: each query of the recall set once, exact then the function.
        recall_runs: dict[str, list[dict[str, Any]]] = {b: [] for b in BUCKETS}
        for q in recall_queries:
            params = {"org_id": q["org"]["id"], "question": QUESTION, "q": q["q"], "k": K}
            t_ex, ids_ex = _timed(service_conn, "service_role", service, EXACT_SQL, params,
                                  {"enable_indexscan": "off"})
            t_fn, ids_fn = _timed(analyst_conn, "authenticated", q["claims"], SEARCH_SQL, params, {})
            recall_runs[q["bucket"]].append({"org": q["org"], "query": q["n"], "recall": _recall(ids_fn, ids_ex),
                                             "exact_s": t_ex, "hnsw_s": t_fn})

        # Latency set: exact answers first (once per query), for the informational direct_* recall.
        t_exact: dict[int, float] = {}
        exact: dict[int, list[int]] = {}
        for i, q in enumerate(queries):
            params = {"org_id": q["org"]["id"], "q": q["q"], "k": K}
            t_exact[i], exact[i] = _timed(service_conn, "service_role", service, EXACT_SQL, params,
                                          {"enable_indexscan": "off"})

        bound = bound_question()
        bound_nodes = service_conn.execute("select numnode(websearch_to_tsquery('english', %s)) as n",
                                           (bound,)).fetchone()["n"]
        if len(bound) != 2000 or bound_nodes != 127:
            raise RuntimeError(f"the bound question is off its bounds: {len(bound)} characters, {bound_nodes} nodes")
        sides = ("hnsw", "hybrid", "bound", "direct", "unfiltered")
        samples: dict[str, dict[str, list[float]]] = {b: {s: [] for s in sides} for b in BUCKETS}
        found_direct: dict[int, list[int]] = {}
        for rep in range(warmup + reps):
            for i, q in enumerate(queries):
                search = {"org_id": q["org"]["id"], "question": QUESTION, "q": q["q"], "k": K}
                shift = (rep + i) % len(sides)
                for side in sides[shift:] + sides[:shift]:
                    if side == "hnsw":
                        seconds, _ = _timed(analyst_conn, "authenticated", q["claims"], SEARCH_SQL, search, {})
                    elif side == "hybrid":
                        seconds, _ = _timed(analyst_conn, "authenticated", q["claims"], HYBRID_SQL, search, {})
                    elif side == "bound":
                        seconds, _ = _timed(analyst_conn, "authenticated", q["claims"], HYBRID_SQL,
                                            {**search, "question": bound}, {})
                    elif side == "direct":
                        seconds, ids = _timed(analyst_conn, "authenticated", q["claims"], DIRECT_SQL, search,
                                              function_hnsw)
                        found_direct[i] = ids
                    else:
                        seconds, _ = _timed(service_conn, "service_role", service, UNFILTERED_SQL,
                                            {"q": q["q"], "n": CANDIDATES}, function_hnsw)
                    if rep >= warmup:
                        samples[q["bucket"]][side].append(seconds)

        # Which index the function's vector query used, per bucket (smallest picked organization's first query).
        plans: dict[str, Any] = {}
        for bucket in BUCKETS:
            q = next((q for q in reversed(queries) if q["bucket"] == bucket and q["n"] == 0), None)
            if q is None:
                continue
            messages = capture_plans(analyst_conn, "authenticated", q["claims"], SEARCH_SQL,
                                     {"org_id": q["org"]["id"], "question": QUESTION, "q": q["q"], "k": K})
            plan = next((m for m in messages if "operator(extensions.<=>)" in m and "Function Scan" not in m), None)
            scans = [f"{m['node']}{' using ' + m['using'] if m['using'] else ''} on {m['on']}"
                     for m in SCAN.finditer(plan or "")]
            plans[bucket] = {"org": q["org"]["slug"], "org_chunks": q["org"]["chunks"], "scans": scans, "plan": plan}
            with analyst_conn.transaction():
                set_request_context(analyst_conn, "authenticated", q["claims"])
                _set_local(analyst_conn, function_hnsw)
                direct_plan = "\n".join(r["QUERY PLAN"] for r in analyst_conn.execute(
                    "explain (analyze, buffers) " + DIRECT_SQL,
                    {"org_id": q["org"]["id"], "q": q["q"], "k": K}).fetchall())
            plans[bucket]["direct_plan"] = direct_plan
            plans[bucket]["direct_scans"] = [f"{m['node']}{' using ' + m['using'] if m['using'] else ''} on {m['on']}"
                                             for m in SCAN.finditer(direct_plan)]
    finally:
        analyst_conn.close()
        service_conn.close()

    results: list[Result] = []
    details: dict[str, Any] = {
        "k": K, "candidates": CANDIDATES, "queries_per_org": QUERIES_PER_ORG, "buckets": ranges,
        "recall_sample": {"orgs_per_bucket": RECALL_ORGS_PER_BUCKET, "queries_per_org": RECALL_QUERIES_PER_ORG,
                          "salt": RECALL_SALT},
        "pgvector": pgvector["extversion"] if pgvector else None, "session_settings": tuning,
        "effective_settings": effective, "function_hnsw_settings": function_hnsw,
        "index_build_s": dataset.get("timings", {}).get("chunks_hnsw_index"),
        "chunks": spec["chunks"], "per_org": {}, "plans": plans,
    }
    for bucket in BUCKETS:
        idx = [i for i, q in enumerate(queries) if q["bucket"] == bucket]
        if not idx:
            continue
        runs = recall_runs[bucket]
        recalls = [r["recall"] for r in runs]
        misses = [{"org": r["org"]["slug"], "chunks": r["org"]["chunks"], "query": r["query"], "recall": r["recall"]}
                  for r in runs if r["recall"] < 1]
        direct_recalls = [_recall(found_direct[i], exact[i]) for i in idx]
        for org in recall_picks[bucket]:
            mine = [r["recall"] for r in runs if r["org"] is org]
            details["per_org"][org["slug"]] = {"bucket": bucket, "chunks": org["chunks"], "rank": org["rank"],
                                               "recall_at_10": round(statistics.fmean(mine), 4),
                                               "min_recall": round(min(mine), 2)}
        hnsw = Measurement(samples[bucket]["hnsw"])
        hybrid = Measurement(samples[bucket]["hybrid"])
        at_bound = Measurement(samples[bucket]["bound"])
        direct = Measurement(samples[bucket]["direct"])
        unfiltered = Measurement(samples[bucket]["unfiltered"])
        exact_m = Measurement([t_exact[i] for i in idx])
        params = {"bucket": bucket, "orgs": [o["slug"] for o in picks[bucket]],
                  "org_chunks": [o["chunks"] for o in picks[bucket]], "queries": len(idx), "k": K,
                  "hnsw.ef_search": effective["hnsw.ef_search"],
                  "hnsw.max_scan_tuples": effective["hnsw.max_scan_tuples"],
                  "tuned_in_session": tuning, "plan_scans": plans.get(bucket, {}).get("scans")}
        recall = statistics.fmean(recalls)
        results.append(Result(
            benchmark=NAME, name=f"{NAME}.recall_at_10.{bucket}", kind="score",
            measured=Measurement([r["hnsw_s"] for r in runs]), baseline_name="exact",
            baseline=Measurement([r["exact_s"] for r in runs]), target_op=">=", target=TARGET_RECALL,
            params={**params, "orgs": [o["slug"] for o in recall_picks[bucket]],
                    "org_chunks": [o["chunks"] for o in recall_picks[bucket]], "queries": len(recalls),
                    "recall_min": round(min(recalls), 2), "queries_below_1": misses},
            value=recall,
            note="ratio = mean recall@10 of search_documents (HNSW, RLS) against exact search, over the recall set",
        ))
        results.append(Result(
            benchmark=NAME, name=f"{NAME}.filtered_p95.{bucket}", kind="time", stat="p95", measured=hnsw,
            baseline_name="unfiltered", baseline=unfiltered, target_op="<=", target=TARGET_P95,
            params={**params, "hnsw_p99_ms": round(_p99(hnsw) * 1000, 3),
                    "unfiltered_p99_ms": round(_p99(unfiltered) * 1000, 3)},
            note="ratio of p95 latencies: search_documents as the analyst vs the same HNSW query unfiltered",
        ))
        results.append(Result(
            benchmark=NAME, name=f"{NAME}.hybrid_p95.{bucket}", kind="time", stat="p95", measured=hybrid,
            baseline_name="unfiltered", baseline=unfiltered, target_op="<=", target=TARGET_HYBRID_P95, params=params,
            note="ratio of p95 latencies: search_documents in mode hybrid (full text + vector fused; what "
                 f"insights/ask runs, question {QUESTION!r}) as the analyst vs unfiltered HNSW",
        ))
        results.append(Result(
            benchmark=NAME, name=f"{NAME}.hybrid_at_bound_p95.{bucket}", kind="time", stat="p95", measured=at_bound,
            baseline_name="unfiltered", baseline=unfiltered, target_op="<=", target=None,
            params={**params, "question_chars": len(bound), "question_tsquery_nodes": bound_nodes},
            note="informational: the hybrid call with a question at search_documents' bounds (2000 characters, 64 "
                 "search terms) vs unfiltered HNSW",
        ))
        results.append(Result(
            benchmark=NAME, name=f"{NAME}.direct_recall_at_10.{bucket}", kind="score", measured=direct,
            baseline_name="exact", baseline=exact_m, target_op=">=", target=None,
            params={**params, "recall_min": round(min(direct_recalls), 2),
                    "plan_scans": plans.get(bucket, {}).get("direct_scans")}, value=statistics.fmean(direct_recalls),
            note="informational: the function's `nearest` query as a plain statement as the analyst (RLS, "
                 "planned for the org's literal id), recall@10 against exact",
        ))
        results.append(Result(
            benchmark=NAME, name=f"{NAME}.direct_p95.{bucket}", kind="time", stat="p95", measured=direct,
            baseline_name="unfiltered", baseline=unfiltered, target_op="<=", target=None,
            params={**params, "plan_scans": plans.get(bucket, {}).get("direct_scans")},
            note="informational: p95 of that plain statement vs unfiltered HNSW",
        ))
        log(f"  {NAME}.{bucket}: direct statement recall@10 {statistics.fmean(direct_recalls):.3f}, p95 "
            f"{direct.p95 * 1000:.2f} ms, plan {', '.join(plans.get(bucket, {}).get('direct_scans') or ['?'])}")
        log(f"  {NAME}.{bucket}: recall@10 {recall:.3f} over {len(recalls)} queries of "
            f"{len(recall_picks[bucket])} orgs (min {min(recalls):.1f}, "
            f"{len(misses)} below 1); p95 hnsw "
            f"{hnsw.p95 * 1000:.2f} ms (hybrid {hybrid.p95 * 1000:.2f} ms, at the bounds {at_bound.p95 * 1000:.2f} ms) "
            f"vs unfiltered "
            f"{unfiltered.p95 * 1000:.2f} ms; exact median "
            f"{exact_m.median * 1000:.1f} ms; plan: {', '.join(plans.get(bucket, {}).get('scans') or ['?'])}")
    return results, details


def _p99(m: Measurement) -> float:
    if len(m.samples) < 2:
        return m.samples[0]
    return statistics.quantiles(m.samples, n=100, method="inclusive")[98]
