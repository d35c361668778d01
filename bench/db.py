"""The benchmarks' own embedded cluster, its database, and what the machine is.

Benchmarks never touch the development database (54322) or the tests' (54329): they run in
`.arti/bench-db` on port 54330 (ARTI_BENCH_DB_PORT to change it). The `postgres` database of that
cluster is rebuilt exactly like the test harness builds its session database (drop, create from
template1, bootstrap + migrations + sql_functions), then filled by `bench.generate`.
"""

from __future__ import annotations

import fcntl
import os
import platform
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psycopg
from psycopg.rows import dict_row

from arti.errors import ArtiError
from arti.localdb import LocalCluster
from arti.migrate import apply_function_files, migrate
from arti.settings import DEFAULT_PORTS, PROJECT_ROOT, embedded_url

BENCH_DB_DIR = PROJECT_ROOT / ".arti" / "bench-db"
BENCH_DB_PORT = int(os.environ.get("ARTI_BENCH_DB_PORT", DEFAULT_PORTS["bench_database"]))
RESULTS_DIR = Path(__file__).resolve().parent / "results"


def bench_cluster(root: Path = BENCH_DB_DIR, port: int = BENCH_DB_PORT) -> LocalCluster:
    return LocalCluster(root, port)


@contextmanager
def cluster_running(cluster: LocalCluster) -> Iterator[LocalCluster]:
    """The cluster, started if it was not running and stopped afterwards if we started it.

    A lock file under the cluster's folder keeps two bench runs from rebuilding one database
    under each other's feet.
    """
    cluster.root.mkdir(parents=True, exist_ok=True)
    lock_path = cluster.root / "bench.lock"
    with lock_path.open("w") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise ArtiError(f"another benchmark run holds {lock_path}; wait for it to finish") from None
        started = cluster.start()
        try:
            yield cluster
        finally:
            if started:
                cluster.stop()


def database_url(cluster: LocalCluster) -> str:
    return embedded_url(cluster.port)


def connect(url: str, *, autocommit: bool = True) -> psycopg.Connection[Any]:
    return psycopg.connect(url, autocommit=autocommit, row_factory=dict_row)


def build_database(cluster: LocalCluster) -> str:
    """Drop and recreate the bench database and migrate it, as tests/harness.py does. Returns its URL."""
    cluster.recreate_database()
    url = database_url(cluster)
    with connect(url) as conn:
        migrate(conn, PROJECT_ROOT / "supabase" / "migrations")
        apply_function_files(conn, PROJECT_ROOT / "sql_functions")
    return url


def _meminfo_bytes() -> int | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine_info(conn: psycopg.Connection[Any] | None = None) -> dict[str, Any]:
    """nproc, RAM, CPU, Python and (with a connection) the Postgres version and the settings that matter."""
    try:
        nproc = len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        nproc = os.cpu_count() or 1
    ram = _meminfo_bytes()
    info: dict[str, Any] = {
        "nproc": nproc,
        "ram_bytes": ram,
        "ram_gib": round(ram / 2**30, 1) if ram else None,
        "cpu": _cpu_model(),
        "python": platform.python_version(),
        "psycopg": psycopg.__version__,
        "platform": platform.platform(),
    }
    if conn is not None:
        info["postgres"] = conn.execute("show server_version").fetchone()["server_version"]
        info["postgres_version"] = conn.execute("select version() as v").fetchone()["v"]
        names = ["shared_buffers", "work_mem", "maintenance_work_mem", "synchronous_commit", "max_wal_size",
                 "max_parallel_workers_per_gather", "jit", "wal_level"]
        rows = conn.execute("select name, setting, unit from pg_settings where name = any(%s)", (names,)).fetchall()
        info["postgres_settings"] = {
            r["name"]: f"{r['setting']}{'' if r['unit'] in (None, '') else ' ' + r['unit']}" for r in rows
        }
    return info


def describe_machine(info: dict[str, Any]) -> str:
    settings = info.get("postgres_settings") or {}
    shown = ", ".join(f"{k} {settings[k]}" for k in ("synchronous_commit", "shared_buffers", "wal_level")
                      if k in settings)
    return (f"machine: {info['nproc']} CPU ({info['cpu']}), {info['ram_gib']} GiB RAM, "
            f"PostgreSQL {info.get('postgres', '?')}, Python {info['python']}"
            + (f"; server settings in force: {shown}" if shown else ""))
