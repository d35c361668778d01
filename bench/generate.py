"""Benchmark data: organizations of Zipf-distributed sizes, their users, artists, accounts and metrics.

Seeded and reproducible: the same spec gives the same ids and values on every run.

* `full`:  1,000 organizations, 10,000 connected accounts, 365 days x 5 metrics = 18,250,000 metric rows,
  and 1,000,000 text chunks with 384-d vectors (HNSW-indexed; ~6 min of the ~8 min on 2 vCPU).
* `small`: 20 organizations, 200 accounts, 90 days x 5 metrics = 90,000 metric rows and 20,000 chunks
  (a few seconds).

Organization sizes follow a Zipf law (size ~ 1/rank^s, every organization has at least one account),
so `bench-org-0001` is the largest and the median organization has a handful of accounts. Every
organization has an owner and an analyst (auth.users rows + memberships) so the RLS benchmarks can
act as an analyst of any organization.

Small tables are written with COPY FROM STDIN from rows generated in Python. The metrics table is
filled with `insert ... select` over `generate_series` in SQL, in parallel (one connection per
core), after dropping its primary key, secondary index and foreign key, which are rebuilt afterwards
(`--load-strategy keep` loads with them in place; `--metrics-method copy` streams Python-generated rows
with COPY instead; both exist to measure the choice, see bench/README.md).

`DatasetSpec.chunks` (1M full size, 20k small) text chunks with 384-d vectors go into public.documents
through `generate_chunks` (bench/chunks.py: Zipf-sized per organization, mixture-of-topics vectors,
binary COPY, HNSW built after the load). `--chunks N` changes their number; a dataset that differs
only by it gets its chunks replaced without regenerating the metrics.

Run: `python -m bench.generate [--small] [--load-strategy drop|keep] [--metrics-method sql|copy] [--jobs N]`
(builds the bench cluster's database from scratch, prints the time of each stage).
"""

from __future__ import annotations

import argparse
import json
import math
import random
import sys
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field, replace
from datetime import date, datetime, timedelta
from typing import Any

import psycopg

from arti.errors import ArtiError
from bench import db as benchdb

PROVIDERS = ("spotify", "youtube", "instagram", "soundcloud", "tiktok")
# (name, scale relative to the account's base audience, weekly wiggle, growth multiplier)
METRICS: tuple[tuple[str, float, float, float], ...] = (
    ("followers", 1.0, 0.002, 1.0),
    ("listeners", 0.4, 0.10, 0.8),
    ("plays", 0.05, 0.30, 0.5),
    ("popularity", 0.0, 0.05, 0.0),
    ("views", 0.02, 0.50, 0.6),
)
END_DAY = date(2026, 11, 24)  # fixed, so a dataset is the same whenever it is generated


@dataclass(frozen=True)
class DatasetSpec:
    """What to generate. `name` identifies the size; the whole spec is stored with the data."""

    name: str
    orgs: int
    accounts: int
    days: int
    zipf_s: float = 1.0
    seed: int = 20261125
    end_day: date = END_DAY
    metrics: tuple[str, ...] = tuple(m[0] for m in METRICS)
    chunks: int = 0  # text chunks with 384-d vectors in public.documents (bench/chunks.py)

    @property
    def start_day(self) -> date:
        return self.end_day - timedelta(days=self.days - 1)

    @property
    def metric_rows(self) -> int:
        return self.accounts * self.days * len(self.metrics)

    def as_json(self) -> dict[str, Any]:
        out = asdict(self)
        out["end_day"] = self.end_day.isoformat()
        out["start_day"] = self.start_day.isoformat()
        out["metrics"] = list(self.metrics)
        out["metric_rows"] = self.metric_rows
        return out


SIZES: dict[str, DatasetSpec] = {
    "full": DatasetSpec("full", orgs=1000, accounts=10_000, days=365, chunks=1_000_000),
    "small": DatasetSpec("small", orgs=20, accounts=200, days=90, chunks=20_000),
}


@dataclass
class Dataset:
    """Ids of what was generated (enough for the benchmarks to pick organizations and users)."""

    spec: DatasetSpec
    timings: dict[str, float] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=dict)
    options: dict[str, Any] = field(default_factory=dict)


def zipf_sizes(orgs: int, accounts: int, s: float) -> list[int]:
    """Accounts per organization, largest first: at least 1 each, the rest shared by 1/rank^s (largest remainder)."""
    if accounts < orgs:
        raise ValueError("need at least one account per organization")
    weights = [1.0 / (rank ** s) for rank in range(1, orgs + 1)]
    total = sum(weights)
    spare = accounts - orgs
    exact = [spare * w / total for w in weights]
    sizes = [1 + math.floor(x) for x in exact]
    short = accounts - sum(sizes)
    by_remainder = sorted(range(orgs), key=lambda i: (-(exact[i] - math.floor(exact[i])), i))
    for i in by_remainder[:short]:
        sizes[i] += 1
    return sizes


def _uuid(rng: random.Random) -> uuid.UUID:
    return uuid.UUID(int=rng.getrandbits(128), version=4)


# ------------------------------------------------------------------------------------------- stages
def _copy(conn: psycopg.Connection[Any], table: str, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> int:
    with conn.cursor() as cur, cur.copy(f"copy {table} ({', '.join(columns)}) from stdin") as copy:
        for row in rows:
            copy.write_row(row)
    return len(rows)


def load_entities(conn: psycopg.Connection[Any], spec: DatasetSpec) -> dict[str, int]:
    """Users, organizations, memberships, artists, connected accounts and per-account seeds (one transaction)."""
    rng = random.Random(spec.seed)
    sizes = zipf_sizes(spec.orgs, spec.accounts, spec.zipf_s)
    created = datetime.combine(spec.start_day, datetime.min.time()).isoformat() + "+00"
    users: list[tuple[Any, ...]] = []
    orgs: list[tuple[Any, ...]] = []
    members: list[tuple[Any, ...]] = []
    artists: list[tuple[Any, ...]] = []
    accounts: list[tuple[Any, ...]] = []
    seeds: list[tuple[Any, ...]] = []
    app_meta = json.dumps({"provider": "email", "providers": ["email"]})
    account_no = 0
    for index, size in enumerate(sizes, start=1):
        org_id, owner, analyst = _uuid(rng), _uuid(rng), _uuid(rng)
        for who, uid in (("owner", owner), ("analyst", analyst)):
            email = f"{who}-{index:04d}@bench.test"
            users.append((uid, email, json.dumps({"full_name": f"{who.title()} {index}"}), app_meta, created))
        orgs.append((org_id, f"Bench org {index}", f"bench-org-{index:04d}", owner, created))
        members.append((org_id, owner, "owner", created))
        members.append((org_id, analyst, "analyst", created))
        artist_id = None
        for k in range(size):
            if k % len(PROVIDERS) == 0:
                artist_id = _uuid(rng)
                artists.append((artist_id, org_id, f"Artist {index}-{k // len(PROVIDERS) + 1}", owner, created))
            account_no += 1
            account_id = _uuid(rng)
            provider = PROVIDERS[k % len(PROVIDERS)]
            accounts.append((account_id, org_id, artist_id, provider, f"ext-{account_no:06d}",
                             f"{provider} account {account_no}", "active", created))
            base = round(10 ** rng.uniform(2, 6.5))  # 100 .. ~3M followers
            trend = round(rng.uniform(-0.0005, 0.003), 6)  # daily growth
            seeds.append((account_id, org_id, account_no, base, trend))
    with conn.transaction():
        _copy(conn, "auth.users", ("id", "email", "raw_user_meta_data", "raw_app_meta_data", "email_confirmed_at"),
              users)
        _copy(conn, "public.organizations", ("id", "name", "slug", "created_by", "created_at"), orgs)
        _copy(conn, "public.memberships", ("org_id", "user_id", "role", "created_at"), members)
        _copy(conn, "public.artists", ("id", "org_id", "name", "created_by", "created_at"), artists)
        _copy(conn, "public.connected_accounts",
              ("id", "org_id", "artist_id", "provider", "external_id", "display_name", "status", "created_at"),
              accounts)
        conn.execute("create schema if not exists bench")
        conn.execute("revoke all on schema bench from public")
        conn.execute(
            "create table bench.account_seed (account_id uuid primary key, org_id uuid not null, "
            "seed integer not null, base numeric not null, trend numeric not null)"
        )
        _copy(conn, "bench.account_seed", ("account_id", "org_id", "seed", "base", "trend"), seeds)
    return {"users": len(users), "organizations": len(orgs), "memberships": len(members),
            "artists": len(artists), "connected_accounts": len(accounts)}


def _metric_values_sql() -> str:
    return ", ".join(
        f"({i}, '{name}', {scale}, {wiggle}, {growth})" for i, (name, scale, wiggle, growth) in enumerate(METRICS, 1)
    )


METRICS_INSERT_SQL = """
insert into public.metrics (account_id, metric, day, org_id, value, note, fetched_at)
select
    a.account_id,
    m.metric,
    %(start)s::date + d.n,
    a.org_id,
    case
        when (a.seed * 7 + d.n * 13 + m.ord * 31) %% 101 = 0 then null
        when m.metric = 'popularity'
            then least(100, greatest(0, round(20 + a.seed %% 60 + 5 * sin(d.n / 30.0 + a.seed))))
        else round(
            a.base * m.scale * (1 + a.trend * m.growth * d.n) * (1 + m.wiggle * sin(d.n / 7.0 + a.seed))
        )
    end,
    case when (a.seed * 7 + d.n * 13 + m.ord * 31) %% 101 = 0 then 'not provided' end,
    (%(start)s::date + d.n + 1) + time '02:00'
from bench.account_seed as a
cross join (values {metrics}) as m (ord, metric, scale, wiggle, growth)
cross join generate_series(0, %(days)s - 1) as d (n)
where a.seed %% %(parts)s = %(part)s
""".replace("{metrics}", _metric_values_sql())


def _metric_rows_python(spec: DatasetSpec, seeds: Sequence[tuple[Any, ...]]) -> Iterator[bytes]:
    """Text COPY lines for the metrics of `seeds`, same formula as METRICS_INSERT_SQL (floating rounding aside)."""
    for account_id, org_id, seed, base, trend in seeds:
        base_f, trend_f = float(base), float(trend)
        lines = []
        for ord_, (name, scale, wiggle, growth) in enumerate(METRICS, 1):
            for n in range(spec.days):
                day = spec.start_day + timedelta(days=n)
                if (seed * 7 + n * 13 + ord_ * 31) % 101 == 0:
                    value, note = "\\N", "not provided"
                elif name == "popularity":
                    popularity = round(20 + seed % 60 + 5 * math.sin(n / 30.0 + seed))
                    value, note = str(min(100, max(0, popularity))), "\\N"
                else:
                    trend_factor = 1 + trend_f * growth * n
                    value = str(round(base_f * scale * trend_factor * (1 + wiggle * math.sin(n / 7.0 + seed))))
                    note = "\\N"
                fetched = f"{day + timedelta(days=1)} 02:00+00"
                lines.append(f"{account_id}\t{name}\t{day}\t{org_id}\t{value}\t{note}\t{fetched}\n")
        yield "".join(lines).encode()


def _load_metrics_part(url: str, spec: DatasetSpec, method: str, part: int, parts: int) -> int:
    with benchdb.connect(url) as conn:
        if method == "sql":
            cur = conn.execute(METRICS_INSERT_SQL, {"start": spec.start_day, "days": spec.days,
                                                    "parts": parts, "part": part})
            return cur.rowcount
        seeds = conn.execute(
            "select account_id, org_id, seed, base, trend from bench.account_seed where seed %% %s = %s order by seed",
            (parts, part),
        ).fetchall()
        rows = [tuple(r.values()) for r in seeds]
        with conn.cursor() as cur, cur.copy(
            "copy public.metrics (account_id, metric, day, org_id, value, note, fetched_at) from stdin"
        ) as copy:
            for chunk in _metric_rows_python(spec, rows):
                copy.write(chunk)
        return len(rows) * spec.days * len(spec.metrics)


def _parallel(calls: Sequence[Callable[[], Any]]) -> list[Any]:
    if len(calls) == 1:
        return [calls[0]()]
    with ThreadPoolExecutor(max_workers=len(calls)) as pool:
        futures = [pool.submit(c) for c in calls]
        return [f.result() for f in futures]


def metrics_constraints(conn: psycopg.Connection[Any]) -> dict[str, Any]:
    """The primary key, foreign keys and secondary indexes of public.metrics, as SQL to recreate them."""
    pk = conn.execute(
        "select conname, pg_get_indexdef(conindid) as indexdef from pg_constraint "
        "where conrelid = 'public.metrics'::regclass and contype = 'p'"
    ).fetchone()
    fks = conn.execute(
        "select conname, pg_get_constraintdef(oid) as def from pg_constraint "
        "where conrelid = 'public.metrics'::regclass and contype = 'f' order by conname"
    ).fetchall()
    indexes = conn.execute(
        "select c.relname, pg_get_indexdef(i.indexrelid) as indexdef from pg_index as i "
        "join pg_class as c on c.oid = i.indexrelid "
        "where i.indrelid = 'public.metrics'::regclass and not i.indisprimary order by c.relname"
    ).fetchall()
    return {"pk": pk, "fks": fks, "indexes": indexes}


def load_metrics(url: str, spec: DatasetSpec, *, strategy: str, method: str, jobs: int) -> dict[str, float]:
    """Fill public.metrics; returns the time of each step."""
    timings: dict[str, float] = {}
    with benchdb.connect(url) as conn:
        conn.execute("alter table public.metrics set (autovacuum_enabled = false)")
        saved = metrics_constraints(conn)
        if strategy == "drop":
            t0 = time.perf_counter()
            for fk in saved["fks"]:
                conn.execute(f"alter table public.metrics drop constraint {fk['conname']}")
            conn.execute(f"alter table public.metrics drop constraint {saved['pk']['conname']}")
            for ix in saved["indexes"]:
                conn.execute(f"drop index public.{ix['relname']}")
            timings["metrics_drop_indexes"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    _parallel([lambda p=p: _load_metrics_part(url, spec, method, p, jobs) for p in range(jobs)])
    timings["metrics_load"] = time.perf_counter() - t0

    if strategy == "drop":
        t0 = time.perf_counter()
        index_sql = [saved["pk"]["indexdef"]] + [ix["indexdef"] for ix in saved["indexes"]]

        def build(sql: str) -> None:
            with benchdb.connect(url) as c:
                c.execute(sql)

        # Two concurrent CREATE INDEX (SHARE locks do not conflict); then the key takes over its index.
        with ThreadPoolExecutor(max_workers=max(1, min(jobs, len(index_sql)))) as pool:
            for f in [pool.submit(build, sql) for sql in index_sql]:
                f.result()
        timings["metrics_create_indexes"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        with benchdb.connect(url) as conn:
            pk = saved["pk"]["conname"]
            conn.execute(f"alter table public.metrics add constraint {pk} primary key using index {pk}")
            for fk in saved["fks"]:
                conn.execute(f"alter table public.metrics add constraint {fk['conname']} {fk['def']}")
        timings["metrics_add_constraints"] = time.perf_counter() - t0

    with benchdb.connect(url) as conn:
        conn.execute("alter table public.metrics reset (autovacuum_enabled)")
        after = metrics_constraints(conn)
        if after != saved:
            raise ArtiError(f"public.metrics constraints differ after the load: {saved} != {after}")
    return timings


def generate_chunks(url: str, spec: DatasetSpec, *, jobs: int, log: Callable[[str], None] = print
                    ) -> tuple[dict[str, int], dict[str, float]]:
    """public.documents: `spec.chunks` text chunks with 384-d vectors over the Zipf organizations (bench/chunks.py).

    Loaded with binary COPY (one connection per core) with the HNSW, GIN and org_id indexes dropped,
    then rebuilt (HNSW first); returns counts and the time of each step.
    """
    from bench.chunks import load_chunks

    return load_chunks(url, spec, jobs=jobs, log=log)


def with_chunks(spec: DatasetSpec, chunks: int | None) -> DatasetSpec:
    """The spec with another number of chunks (`--chunks N`); the rest of the dataset is unchanged."""
    if chunks is None or chunks == spec.chunks:
        return spec
    if chunks and chunks < spec.orgs:
        raise ArtiError(f"--chunks must be 0 or at least one per organization ({spec.orgs})")
    return replace(spec, chunks=chunks)


def regenerate_chunks(cluster: Any, spec: DatasetSpec, found: dict[str, Any], *, jobs: int | None = None,
                      log: Callable[[str], None] = print) -> None:
    """Replace only the chunks of a dataset whose spec differs from `spec` by `chunks` alone (metrics kept)."""
    jobs = jobs or benchdb.machine_info()["nproc"]
    url = benchdb.database_url(cluster)
    log(f"regenerating only the chunks: {found['spec'].get('chunks', 0):,} -> {spec.chunks:,} (metrics kept)")
    t0 = time.perf_counter()
    timings = {k: v for k, v in found["timings"].items() if not k.startswith("chunks")}
    counts = {k: v for k, v in found["counts"].items() if not k.startswith("chunks")}
    if spec.chunks:
        got, steps = generate_chunks(url, spec, jobs=jobs, log=log)
        counts.update(got)
        timings.update({k: round(v, 3) for k, v in steps.items()})
    else:
        with benchdb.connect(url) as conn:
            conn.execute("truncate public.documents restart identity")
    timings["chunks"] = round(time.perf_counter() - t0, 3)
    before = found["timings"]
    timings["total"] = round(before.get("total", 0) - before.get("chunks", 0) + timings["chunks"], 3)
    with benchdb.connect(url) as conn:
        record_dataset(conn, Dataset(spec, timings=timings, counts=counts, options=found["options"]))


def record_dataset(conn: psycopg.Connection[Any], dataset: Dataset) -> None:
    conn.execute(
        "create table if not exists bench.dataset (id integer primary key default 1 check (id = 1), "
        "spec jsonb not null, options jsonb not null, timings jsonb not null, counts jsonb not null, "
        "generated_at timestamptz not null)"
    )
    conn.execute(
        "insert into bench.dataset (spec, options, timings, counts, generated_at) values (%s, %s, %s, %s, now()) "
        "on conflict (id) do update set spec = excluded.spec, options = excluded.options, "
        "timings = excluded.timings, counts = excluded.counts, generated_at = excluded.generated_at",
        (json.dumps(dataset.spec.as_json()), json.dumps(dataset.options), json.dumps(dataset.timings),
         json.dumps(dataset.counts)),
    )


def current_dataset(url: str) -> dict[str, Any] | None:
    """The spec, timings and counts of the data in the bench database, or None when there is none (or it is partial)."""
    try:
        with benchdb.connect(url) as conn:
            if conn.execute("select to_regclass('bench.dataset') as t").fetchone()["t"] is None:
                return None
            return conn.execute("select spec, options, timings, counts, generated_at from bench.dataset").fetchone()
    except psycopg.OperationalError:
        return None


def generate(cluster: Any, spec: DatasetSpec, *, strategy: str = "drop", method: str = "sql",
             jobs: int | None = None, log: Callable[[str], None] = print) -> Dataset:
    """Rebuild the bench database and fill it. The cluster must be running."""
    jobs = jobs or benchdb.machine_info()["nproc"]
    dataset = Dataset(spec, options={"load_strategy": strategy, "metrics_method": method, "jobs": jobs})
    total = time.perf_counter()

    def stage(name: str, fn: Callable[[], Any]) -> Any:
        t0 = time.perf_counter()
        result = fn()
        dataset.timings[name] = round(time.perf_counter() - t0, 3)
        log(f"  {name:<24} {dataset.timings[name]:8.1f} s")
        return result

    log(f"generating the {spec.name} dataset: {spec.orgs} orgs, {spec.accounts} accounts, {spec.days} days x "
        f"{len(spec.metrics)} metrics = {spec.metric_rows:,} metric rows (load strategy {strategy}, "
        f"method {method}, {jobs} jobs)")
    url = stage("build_database", lambda: benchdb.build_database(cluster))
    with benchdb.connect(url) as conn:
        dataset.counts.update(stage("entities", lambda: load_entities(conn, spec)))
    t0 = time.perf_counter()
    steps = load_metrics(url, spec, strategy=strategy, method=method, jobs=jobs)
    for name, seconds in steps.items():
        dataset.timings[name] = round(seconds, 3)
        log(f"  {name:<24} {seconds:8.1f} s")
    dataset.timings["metrics_total"] = round(time.perf_counter() - t0, 3)
    if spec.chunks:
        t0 = time.perf_counter()
        counts, steps = generate_chunks(url, spec, jobs=jobs, log=log)
        dataset.counts.update(counts)
        dataset.timings.update({k: round(v, 3) for k, v in steps.items()})
        dataset.timings["chunks"] = round(time.perf_counter() - t0, 3)
    with benchdb.connect(url) as conn:
        stage("vacuum_analyze", lambda: (conn.execute("vacuum (analyze) public.metrics"),
                                         conn.execute("analyze"), conn.execute("checkpoint")))
        dataset.counts["metrics"] = conn.execute("select count(*) as n from public.metrics").fetchone()["n"]
        if dataset.counts["metrics"] != spec.metric_rows:
            raise ArtiError(f"expected {spec.metric_rows} metric rows, found {dataset.counts['metrics']}")
        dataset.counts["metrics_bytes"] = conn.execute(
            "select pg_total_relation_size('public.metrics') as b").fetchone()["b"]
        dataset.timings["total"] = round(time.perf_counter() - total, 3)
        record_dataset(conn, dataset)
    log(f"  {'total':<24} {dataset.timings['total']:8.1f} s  ({dataset.counts['metrics']:,} metric rows, "
        f"{dataset.counts['metrics_bytes'] / 2**30:.2f} GiB with indexes)")
    return dataset


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.generate", description=__doc__.split("\n\n")[0])
    parser.add_argument("--small", action="store_true", help="the small dataset (default: full)")
    parser.add_argument("--load-strategy", choices=("drop", "keep"), default="drop",
                        help="drop the metrics indexes/keys during the load and rebuild them (default), or keep them")
    parser.add_argument("--metrics-method", choices=("sql", "copy"), default="sql",
                        help="insert ... select generate_series (default) or COPY of Python-generated rows")
    parser.add_argument("--jobs", type=int, default=None, help="parallel loaders (default: nproc)")
    parser.add_argument("--chunks", type=int, default=None,
                        help="text chunks with vectors (default: 1,000,000 full, 20,000 small; 0 for none)")
    args = parser.parse_args(argv)
    spec = SIZES["small" if args.small else "full"]
    try:
        spec = with_chunks(spec, args.chunks)
        with benchdb.cluster_running(benchdb.bench_cluster()) as cluster:
            generate(cluster, spec, strategy=args.load_strategy, method=args.metrics_method, jobs=args.jobs)
    except ArtiError as exc:
        print(f"bench: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
