"""Smoke test of the benchmark harness: generate the small dataset, run every benchmark once, check the JSON.

Every benchmark runs: dashboard_rls, metric_ingest, worker_throughput (a real Procrastinate worker,
60 jobs), retrieval (20k chunks, HNSW built on the fly), handlers (two uvicorn servers started and
stopped by the benchmark), rate_limits (one flood of insights/ask through uvicorn), fair_queues (a real
`arti worker` process, 40 syncs on an idle queue and 40 during a webhook flood), sync_at_scale (200 accounts'
daily pass through two real workers and the quota-enforcing fake providers, ~20 s) and soak (the handlers and a
worker as the platform starts them, 20 s of steady load; the bench's own soak lasts 5 minutes) — about two
minutes.

No timing is asserted (benchmarks report ratios; a loaded CI machine must not fail this); the soak's success rate
is (1.000: no failed request, job or delivery), its memory and connection ratios are not. It uses its
own cluster (.arti/bench-smoke-db, port 54331 or ARTI_BENCH_SMOKE_PORT) rather than the bench
cluster's, so it neither replaces a full-size dataset someone generated nor rebuilds the database
under a benchmark that is running; the cluster is stopped afterwards if this test started it.
Skipped when the Postgres packages are not installed.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from arti.localdb import missing_system_packages
from arti.settings import DEFAULT_PORTS, PROJECT_ROOT

SMOKE_DB_DIR = PROJECT_ROOT / ".arti" / "bench-smoke-db"
SMOKE_PORT = int(os.environ.get("ARTI_BENCH_SMOKE_PORT", DEFAULT_PORTS["bench_smoke_database"]))

pytestmark = pytest.mark.skipif(bool(missing_system_packages()), reason="the embedded Postgres is not installed")


def test_small_run_writes_every_benchmark(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import bench
    from bench.runner import BENCHMARKS

    output = tmp_path / "latest.json"
    code = bench.main(["--small", "--reps", "1", "--regenerate", "--output", str(output),
                       "--db-dir", str(SMOKE_DB_DIR), "--port", str(SMOKE_PORT)])
    printed = capsys.readouterr().out

    assert code == 0
    payload = json.loads(output.read_text())
    assert payload["schema_version"] == 1
    assert payload["options"] == {"size": "small", "reps": 1, "warmup": 0, "only": sorted(BENCHMARKS)}
    machine = payload["machine"]
    assert machine["nproc"] >= 1 and machine["ram_bytes"] > 0 and machine["postgres"].startswith("15")
    assert payload["dataset"]["spec"]["name"] == "small"
    assert payload["dataset"]["counts"]["metrics"] == payload["dataset"]["spec"]["metric_rows"] == 90_000

    assert set(payload["benchmarks"]) == set(BENCHMARKS)
    for name, bench_result in payload["benchmarks"].items():
        assert bench_result["results"], name
        for r in bench_result["results"]:
            assert r["benchmark"] == name and r["name"].startswith(name + ".")
            if name in ("dashboard_rls", "metric_ingest"):
                assert r["measured"]["reps"] == r["baseline"]["reps"] == 1
            else:  # per-query / per-request / per-job samples
                assert r["measured"]["reps"] >= 1 and r["baseline"]["reps"] >= 1
            assert r["measured"]["median_ms"] > 0 and r["baseline"]["median_ms"] > 0
            assert r["ratio"] > 0
            assert isinstance(r["met"], bool) if r["target"] else r["met"] is None
            assert r["name"] in printed
        assert any(r["target"] for r in bench_result["results"]), name
    assert {r["name"] for r in payload["results"]} == {
        r["name"] for b in payload["benchmarks"].values() for r in b["results"]
    }

    explain = payload["benchmarks"]["dashboard_rls"]["explain"]
    plan = explain["plans"]["timeseries.largest.analyst"]
    assert "public.metrics" in plan["plan"]
    assert isinstance(explain["analyst_timeseries_uses_index_scan"], bool)
    ingest = payload["benchmarks"]["metric_ingest"]["details"]
    assert ingest["rows_per_batch"] == 200 * 5
    ingest_names = {r["name"] for r in payload["benchmarks"]["metric_ingest"]["results"]}
    assert "metric_ingest.new_day.copy_constrained_vs_copy_raw" in ingest_names
    assert ingest["cases"]["new_day"]["copy_constrained"]["rows"] == 200 * 5
    # The ceiling of the per-account target: the same statement run in the server, every batch written once.
    assert {"metric_ingest.one_account.in_server_vs_executemany", "metric_ingest.one_account.upsert_vs_in_server",
            "metric_ingest.one_account.prebuilt_vs_executemany"} <= ingest_names
    assert ingest["cases"]["one_account"]["in_server"]["rows"] == ingest["cases"]["one_account"]["upsert"]["rows"]

    counts, timings = payload["dataset"]["counts"], payload["dataset"]["timings"]
    assert counts["chunks"] == payload["dataset"]["spec"]["chunks"] == 20_000
    assert counts["chunks_largest_org"] > 10 * counts["chunks_smallest_org"]
    assert timings["chunks_hnsw_index"] > 0

    worker = payload["benchmarks"]["worker_throughput"]
    assert {r["name"] for r in worker["results"]} == {
        "worker_throughput.jobs_per_s.c16_vs_c1", "worker_throughput.defer_to_start.c16_vs_c1"}
    assert worker["details"]["latency"]["c16"]["reps"] == worker["details"]["latency"]["c1"]["reps"] > 0

    retrieval = payload["benchmarks"]["retrieval"]
    names = {r["name"] for r in retrieval["results"]}
    for bucket in ("small", "medium", "large"):
        assert {f"retrieval.recall_at_10.{bucket}", f"retrieval.filtered_p95.{bucket}",
                f"retrieval.hybrid_p95.{bucket}"} <= names
    for r in retrieval["results"]:
        if r["kind"] == "score":
            assert 0 <= r["ratio"] <= 1
            if r["name"].startswith("retrieval.recall_at_10."):
                assert isinstance(r["params"]["queries_below_1"], list)
                assert r["params"]["queries"] == len(r["params"]["orgs"]) * 10
            assert r["target"] == (">= 0.95" if ".recall_at_10." in r["name"] else None)
        else:
            assert r["stat"] == "p95"
    assert retrieval["details"]["plans"]["large"]["plan"]

    limits = payload["benchmarks"]["rate_limits"]
    admitted = next(r for r in limits["results"] if r["name"] == "rate_limits.insights_ask.admitted_vs_limit")
    assert admitted["kind"] == "score" and admitted["target"] == "<= 1.0"
    floods = admitted["params"]["floods"]
    assert len(floods) == 1 and floods[0]["admitted"] + floods[0]["refused"] == admitted["params"]["calls_per_flood"]
    assert admitted["params"]["limit_per_user"] <= floods[0]["admitted"] <= floods[0]["allowed_at_most"]

    fair = payload["benchmarks"]["fair_queues"]
    (latency,) = fair["results"]
    assert latency["name"] == "fair_queues.sync_defer_to_start.flood_vs_idle" and latency["stat"] == "p95"
    assert latency["measured"]["reps"] == latency["baseline"]["reps"] == latency["params"]["samples"]
    assert fair["details"]["pending_after_block"] and all(n > 0 for n in fair["details"]["pending_after_block"])

    scale = payload["benchmarks"]["sync_at_scale"]
    assert {r["name"] for r in scale["results"]} == {
        "sync_at_scale.wall_vs_quota_floor", "sync_at_scale.calls_per_account_vs_minimum",
        "sync_at_scale.calls_within_quota"}
    details = scale["details"]
    assert details["progress"]["succeeded"] == 200 and details["progress"]["failed"] == 0
    assert details["violations"] == 0 and details["floor_s"] > 0
    assert {"spotify", "youtube", "instagram", "soundcloud"} <= set(details["calls_per_account"])
    assert all(details["worker_rss"]["start_mib"]) and all(details["worker_rss"]["end_mib"])
    assert "synchronous_commit" in details["postgres_settings"]
    ingest_targets = {r["name"]: r["target_value"] for r in payload["benchmarks"]["metric_ingest"]["results"]}
    assert ingest_targets["metric_ingest.new_day.upsert_vs_copy_direct"] == 0.85
    assert ingest_targets["metric_ingest.one_account.upsert_vs_executemany"] == 2.0

    soak = payload["benchmarks"]["soak"]
    by_name = {r["name"]: r for r in soak["results"]}
    assert set(by_name) == {"soak.success_rate", "soak.handlers_rss", "soak.worker_rss", "soak.db_connections",
                            "soak.http_latency"}
    assert by_name["soak.success_rate"]["ratio"] == 1.0 and by_name["soak.success_rate"]["met"], \
        soak["details"]["errors"]
    params = by_name["soak.success_rate"]["params"]
    assert params["duration_s"] > 0 and params["requests"] > 0 and params["syncs"] > 0 and params["events"] > 0
    assert params["deliveries"] == {"delivered": params["events"]} and "max_connections" in params["server_settings"]
    assert len(soak["details"]["samples"]) >= 10
    assert all(s["rss_kib"]["handlers"] > 0 and s["rss_kib"]["worker"] > 0 for s in soak["details"]["samples"])

    handlers = payload["benchmarks"]["handlers"]
    throughput = next(r for r in handlers["results"] if r["kind"] == "throughput")
    assert throughput["measured"]["rows"] == throughput["baseline"]["rows"] > 0
    assert throughput["params"]["latency_ms"]["p99_ms"] > 0
