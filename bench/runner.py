"""`python -m bench` / `arti bench`: generate the dataset if needed, run the benchmarks, print the table, write JSON.

Every result is a ratio against a baseline measured in the same run (never an absolute time), with
warm-up repetitions first and the measured and baseline calls interleaved.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from arti.errors import ArtiError
from arti.migrate import apply_function_files, migrate
from arti.settings import PROJECT_ROOT
from bench import (
    dashboard_rls,
    fair_queues,
    handlers_http,
    metric_ingest,
    rate_limits,
    retrieval,
    soak,
    sync_at_scale,
    worker_throughput,
)
from bench import db as benchdb
from bench.generate import SIZES, current_dataset, generate, regenerate_chunks, with_chunks
from bench.report import Result, format_table, write_json

BenchmarkFn = Callable[..., tuple[list[Result], dict[str, Any]]]
BENCHMARKS: dict[str, BenchmarkFn] = {
    dashboard_rls.NAME: dashboard_rls.run,
    metric_ingest.NAME: metric_ingest.run,
    worker_throughput.NAME: worker_throughput.run,
    retrieval.NAME: retrieval.run,
    handlers_http.NAME: handlers_http.run,
    rate_limits.NAME: rate_limits.run,
    fair_queues.NAME: fair_queues.run,
    soak.NAME: soak.run,
    sync_at_scale.NAME: sync_at_scale.run,
}
SCHEMA_VERSION = 1


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench",
        description="Run the ARTi benchmarks against their own embedded cluster (.arti/bench-db, port 54330); "
                    "results are ratios against baselines measured in the same run.",
    )
    parser.add_argument("--small", action="store_true",
                        help="small dataset (20 orgs, 200 accounts, 90 days) for a quick run; default: full size")
    parser.add_argument("--only", action="append", choices=sorted(BENCHMARKS), metavar="NAME",
                        help=f"run only this benchmark (repeatable): {', '.join(BENCHMARKS)}")
    parser.add_argument("--reps", type=int, default=10, help="measured repetitions per case (default 10)")
    parser.add_argument("--warmup", type=int, default=None, help="warm-up repetitions (default 2, 0 when --reps 1)")
    parser.add_argument("--regenerate", action="store_true", help="rebuild the dataset even if it is in place")
    parser.add_argument("--generate-only", action="store_true", help="make sure the dataset exists, run nothing")
    parser.add_argument("--chunks", type=int, default=None,
                        help="text chunks with vectors for `retrieval` (default 1,000,000 full, 20,000 small); "
                             "changing it regenerates only the chunks")
    parser.add_argument("--load-strategy", choices=("drop", "keep"), default="drop",
                        help="how a generation loads public.metrics (see bench/README.md)")
    parser.add_argument("--output", type=Path, default=benchdb.RESULTS_DIR / "latest.json",
                        help="where to write the JSON (default bench/results/latest.json)")
    parser.add_argument("--db-dir", type=Path, default=benchdb.BENCH_DB_DIR, help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, default=benchdb.BENCH_DB_PORT,
                        help="port of the bench cluster (default 54330, or ARTI_BENCH_DB_PORT)")
    parser.add_argument("--strict", action="store_true", help="exit with status 3 when a target is missed")
    args = parser.parse_args(argv)
    if args.reps < 1:
        parser.error("--reps must be at least 1")
    if args.warmup is None:
        args.warmup = 0 if args.reps == 1 else 2
    return args


def _log(message: str) -> None:
    print(message, flush=True)


def ensure_dataset(cluster: Any, spec_name: str, *, regenerate: bool, strategy: str,
                   chunks: int | None = None) -> tuple[dict[str, Any], bool]:
    """The dataset's record (spec, options, timings, counts), generating it when absent or of another size.

    A dataset that differs only by its number of chunks gets its chunks replaced, metrics kept.
    """
    url = benchdb.database_url(cluster)
    spec = with_chunks(SIZES[spec_name], chunks)
    found = None if regenerate else current_dataset(url)
    if found is not None and found["spec"] == spec.as_json():
        # A reused dataset still gets the current schema and functions (the pending migrations, then sql_functions/
        # as the test harness applies them).
        with benchdb.connect(url) as conn:
            applied = migrate(conn, PROJECT_ROOT / "supabase" / "migrations")
            apply_function_files(conn, PROJECT_ROOT / "sql_functions")
        if applied.applied:
            _log(f"dataset: applied {len(applied.applied)} migration(s)")
        _log(f"dataset: {spec_name}, generated {found['generated_at']:%Y-%m-%d %H:%M} UTC "
             f"in {found['timings']['total']:.1f} s (reused; --regenerate to rebuild)")
        return found, False
    if found is not None and {**found["spec"], "chunks": spec.chunks} == spec.as_json():
        regenerate_chunks(cluster, spec, found, log=_log)
        found = current_dataset(url)
        assert found is not None
        return found, True
    if found is not None:
        _log(f"dataset: the bench database holds the {found['spec']['name']} dataset; rebuilding it as {spec_name}")
    generate(cluster, spec, strategy=strategy, log=_log)
    found = current_dataset(url)
    assert found is not None
    return found, True


def run(args: argparse.Namespace) -> dict[str, Any]:
    started = time.perf_counter()
    payload: dict[str, Any] = {
        "schema_version": SCHEMA_VERSION,
        "started_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "options": {"size": "small" if args.small else "full", "reps": args.reps, "warmup": args.warmup,
                    "only": args.only or sorted(BENCHMARKS)},
    }
    cluster = benchdb.bench_cluster(args.db_dir.resolve(), args.port)
    with benchdb.cluster_running(cluster):
        url = benchdb.database_url(cluster)
        dataset, generated = ensure_dataset(cluster, "small" if args.small else "full",
                                            regenerate=args.regenerate, strategy=args.load_strategy,
                                            chunks=args.chunks)
        with benchdb.connect(url) as conn:
            payload["machine"] = benchdb.machine_info(conn)
        _log(benchdb.describe_machine(payload["machine"]))
        payload["dataset"] = {**dataset, "generated_this_run": generated}
        payload["benchmarks"] = {}
        if args.generate_only:
            return payload
        results: list[Result] = []
        for name in args.only or list(BENCHMARKS):
            _log(f"{name}: {args.warmup} warm-up + {args.reps} repetitions per case")
            t0 = time.perf_counter()
            found, details = BENCHMARKS[name](url, dataset, warmup=args.warmup, reps=args.reps, log=_log)
            results.extend(found)
            payload["benchmarks"][name] = {
                "results": [r.as_json() for r in found],
                "met": all(r.met is not False for r in found),
                "seconds": round(time.perf_counter() - t0, 1),
                "details" if name != dashboard_rls.NAME else "explain": details,
            }
    payload["results"] = [r.as_json() for r in results]
    payload["all_met"] = all(r.met is not False for r in results)
    payload["finished_at"] = datetime.now(UTC).isoformat(timespec="seconds")
    payload["duration_s"] = round(time.perf_counter() - started, 1)
    payload["_results"] = results
    return payload


def print_report(payload: dict[str, Any]) -> None:
    results: list[Result] = payload.get("_results", [])
    if not results:
        return
    print()
    print(benchdb.describe_machine(payload["machine"]))
    spec = payload["dataset"]["spec"]
    print(f"dataset: {spec['name']} ({spec['orgs']} orgs, {spec['accounts']} accounts, {spec['days']} days, "
          f"{spec['metric_rows']:,} metric rows); {payload['options']['warmup']} warm-up + "
          f"{payload['options']['reps']} repetitions; ratios against baselines of the same run")
    print()
    print(format_table(results))
    explain = payload["benchmarks"].get(dashboard_rls.NAME, {}).get("explain")
    if explain:
        print_explain(explain)
    met = sum(1 for r in results if r.met)
    scored = sum(1 for r in results if r.met is not None)
    print(f"\ntargets met: {met}/{scored}")


def print_explain(explain: dict[str, Any]) -> None:
    plans = explain["plans"]
    main = plans.get("timeseries.largest.analyst", {})
    print("\nEXPLAIN (ANALYZE, BUFFERS) of the analyst's metrics_timeseries query, largest organization "
          "(statement inside the function, via auto_explain):")
    print("\n".join("    " + line for line in (main.get("plan") or "(not captured)").splitlines()))
    print(f"index scan on public.metrics: {'yes' if main.get('uses_index_scan') else 'NO'}"
          + (f" ({', '.join(main.get('metrics_indexes', []))})" if main.get("metrics_indexes") else ""))
    print("other plans: " + "; ".join(
        f"{k}: {', '.join(s['node'] + (' ' + s['index'] if s['index'] else '') for s in p.get('metrics_scans', []))}"
        f" ({p.get('duration_ms')} ms)" for k, p in plans.items() if k != "timeseries.largest.analyst"
    ))
    for finding in explain.get("findings", []):
        print(f"finding: {finding}")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        payload = run(args)
    except ArtiError as exc:
        print(f"bench: {exc}", file=sys.stderr)
        return 1
    payload["argv"] = list(sys.argv[1:] if argv is None else argv)
    results = payload.pop("_results", [])
    write_json(args.output, payload)
    payload["_results"] = results
    print_report(payload)
    print(f"\nwrote {args.output}")
    if args.strict and not payload.get("all_met", True):
        return 3
    return 0
