"""handlers: requests/s of the real handlers app against a bare Starlette app, both served by uvicorn.

Two single-process uvicorn servers on free loopback ports, started and stopped by the benchmark with
the same options as the platform starts the handlers (arti/platform.py: `--no-server-header
--log-level info`, so access logging is on for both; their output goes to files in a temp folder):

* measured: `handlers.app:create_app` (`--factory`): the real app — its routing table, the
  `endpoint()` error wrapper, exception handlers and lifespan (the database pool opens on the bench
  cluster; /health/live does not use it);
* baseline: `bench.bare_app:app`, one Starlette route returning the same JSON.

Load: `python -m bench.loadgen` (a second process, CONNECTIONS keep-alive connections on loopback,
REQUESTS GETs of /functions/v1/health/live per repetition; the client reports its own elapsed time),
run against one server then the other, alternating, after warm-up repetitions. Target: handlers >= 0.6x
the bare app's req/s. Per-request latencies are kept: p50/p95/p99 are in the results' params and in
an informational latency row.
"""

from __future__ import annotations

import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any
from urllib.parse import urlsplit

import httpx

from arti.settings import PROJECT_ROOT
from bench.report import Measurement, Result, measure_interleaved

NAME = "handlers"
TARGET = 0.6
PATH = "/functions/v1/health/live"
REQUESTS = {"full": 4000, "small": 300}
CONNECTIONS = 32
UVICORN_OPTIONS = ["--no-server-header", "--log-level", "info"]
SERVERS = {
    "handlers": ["handlers.app:create_app", "--factory"],
    "bare": ["bench.bare_app:app"],
}


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _child_env(db_url: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "SUPABASE_DB_URL"}
    env["ARTI_DB_PORT"] = str(urlsplit(db_url).port or 5432)  # the handlers' pool opens on the bench cluster
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(PROJECT_ROOT), env.get("PYTHONPATH")]))
    return env


def _wait_ready(url: str, proc: subprocess.Popen[bytes], log_path: Path, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}: {log_path.read_text()[-2000:]}")
        try:
            if httpx.get(url, timeout=1.0).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"server at {url} not ready within {timeout:.0f} s: {log_path.read_text()[-2000:]}")


@contextmanager
def serve(name: str, db_url: str, folder: Path, env: dict[str, str] | None = None) -> Iterator[str]:
    """A uvicorn server for `name` on a free loopback port; yields the URL of PATH; stopped afterwards.

    `env` adds to (or overrides) the server's environment."""
    port = free_port()
    log_path = folder / f"{name}.log"
    out: IO[bytes]
    with log_path.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "uvicorn", *SERVERS[name], "--host", "127.0.0.1", "--port", str(port),
             *UVICORN_OPTIONS],
            cwd=PROJECT_ROOT, env={**_child_env(db_url), **(env or {})}, stdout=out, stderr=subprocess.STDOUT,
        )
        try:
            url = f"http://127.0.0.1:{port}{PATH}"
            _wait_ready(url, proc, log_path)
            yield url
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def load(url: str, requests: int, connections: int) -> dict[str, Any]:
    """One load-generator run in its own process; its JSON report."""
    done = subprocess.run(
        [sys.executable, "-m", "bench.loadgen", "--url", url, "--requests", str(requests),
         "--concurrency", str(connections)],
        cwd=PROJECT_ROOT, env=_child_env("postgresql://127.0.0.1:1/x"), capture_output=True, text=True,
        check=True, timeout=600,
    )
    report: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    if report["requests"] != requests or report["errors"]:
        raise RuntimeError(f"{url}: {report['requests']} of {requests} answered, statuses {report['statuses']}")
    return report


def _quantiles(ms: list[float]) -> dict[str, float]:
    if len(ms) < 2:
        return {"p50_ms": ms[0], "p95_ms": ms[0], "p99_ms": ms[0]}
    q = statistics.quantiles(ms, n=100, method="inclusive")
    return {"p50_ms": round(statistics.median(ms), 3), "p95_ms": round(q[94], 3), "p99_ms": round(q[98], 3)}


def run(url: str, dataset: dict[str, Any], *, warmup: int, reps: int, log: Callable[[str], None] = print
        ) -> tuple[list[Result], dict[str, Any]]:
    requests = REQUESTS["small" if dataset["spec"]["name"] == "small" else "full"]
    latencies: dict[str, list[float]] = {name: [] for name in SERVERS}
    with tempfile.TemporaryDirectory(prefix="arti-bench-handlers-") as tmp, \
            serve("handlers", url, Path(tmp)) as handlers_url, serve("bare", url, Path(tmp)) as bare_url:
        urls = {"handlers": handlers_url, "bare": bare_url}
        count = iter(range(10**9))

        def runner(name: str) -> Callable[[], float]:
            def go() -> float:
                report = load(urls[name], requests, CONNECTIONS)
                if next(count) >= warmup * len(urls):
                    latencies[name].extend(ms / 1000 for ms in report["latencies_ms"])
                return float(report["seconds"])

            return go

        measured = measure_interleaved({name: runner(name) for name in SERVERS}, warmup=warmup, reps=reps)
    for m in measured.values():
        m.rows = requests
    quantiles = {name: _quantiles([s * 1000 for s in latencies[name]]) for name in SERVERS}
    params = {"path": PATH, "requests_per_repetition": requests, "connections": CONNECTIONS,
              "server": "uvicorn, 1 process, " + " ".join(UVICORN_OPTIONS), "load_generator": "bench.loadgen",
              "latency_ms": quantiles["handlers"], "baseline_latency_ms": quantiles["bare"]}
    results = [
        Result(benchmark=NAME, name=f"{NAME}.health_live.req_per_s", kind="throughput", measured=measured["handlers"],
               baseline_name="bare starlette", baseline=measured["bare"], target_op=">=", target=TARGET,
               params=params, note="rows/s = requests/s"),
        Result(benchmark=NAME, name=f"{NAME}.health_live.latency", kind="time",
               measured=Measurement(latencies["handlers"]), baseline_name="bare starlette",
               baseline=Measurement(latencies["bare"]), target_op="<=", target=None, params=params,
               note=f"informational: per-request latency over {CONNECTIONS} connections; p99 "
                    f"{quantiles['handlers']['p99_ms']:.2f} ms vs {quantiles['bare']['p99_ms']:.2f} ms"),
    ]
    log(f"  {NAME}: handlers {measured['handlers'].rows_per_s():,.0f} req/s (p99 {quantiles['handlers']['p99_ms']:.2f} "
        f"ms), bare {measured['bare'].rows_per_s():,.0f} req/s (p99 {quantiles['bare']['p99_ms']:.2f} ms)")
    details = {"requests_per_repetition": requests, "connections": CONNECTIONS, "latency_ms": quantiles,
               "throughput": {k: v.as_json() for k, v in measured.items()}}
    return results, details
