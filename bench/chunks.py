"""Synthetic retrieval corpus: text chunks with 384-d unit vectors in public.documents, per Zipf-sized organization.

Chunk counts per organization follow the same Zipf law as the accounts (`zipf_sizes(orgs, chunks, s)`,
organizations in slug order, largest first): at the full size the largest organization holds ~133k
chunks and the smallest ~130, three orders of magnitude apart, which is what makes filtered vector
search hard.

Vectors (numpy, seeded, reproducible) come from a mixture model shaped like sentence embeddings:

* `TOPICS` global topic centres (random unit vectors) shared by every organization, each with its own
  `LOCAL_DIMS`-dimensional subspace (so a topic is a low-dimensional manifold, as real embeddings of
  similar sentences are, and nearest neighbours are meaningful rather than random-noise ties);
* each organization uses a few of those topics (more for bigger ones, Zipf-weighted) and has its own
  offset direction, so its chunks sit near, but not on, other organizations' chunks of the same
  topic: an unfiltered nearest-neighbour search finds mostly other tenants' chunks, exactly the case
  where an organization filter starves an approximate index;
* v = normalize(centre + ORG_OFFSET * org_dir + SPREAD * basis @ z + NOISE * isotropic).

Queries (`ChunkSpace.queries`) are drawn from the same distribution as an organization's chunks
(a new question about its own data). The text of each chunk names the topic's provider and metric,
an artist, a change and a week, so the tsvector is meaningful too.

Loading: rows are streamed with binary COPY (pgvector's psycopg dumper), one connection per core, into
public.documents with its HNSW, GIN and org_id indexes dropped; they are rebuilt afterwards (HNSW
first, with `maintenance_work_mem` sized for the graph and parallel maintenance workers), each build
timed, and compared with the migration's definitions.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

import numpy as np
import psycopg
from pgvector.psycopg import register_vector

from arti.errors import ArtiError
from bench import db as benchdb

DIM = 384
TOPICS = 256
LOCAL_DIMS = 16
ORG_OFFSET = 0.35
SPREAD = 0.6
NOISE = 0.15
MODEL = "bench-synthetic-384"
BATCH = 2_000  # rows generated with numpy at a time
HNSW_INDEX = "documents_embedding_idx"
PROVIDER_WORDS = ("Spotify", "YouTube", "Instagram", "SoundCloud")
METRIC_WORDS = ("followers", "monthly listeners", "plays", "popularity", "views", "saves", "shares", "comments")
VERBS = ("rose", "fell", "jumped", "dipped", "held steady", "doubled", "slipped", "climbed")
SOURCES = (("metrics", 0.7), ("anomaly", 0.2), ("campaign", 0.1))
COPY_COLUMNS = ("org_id", "artist_id", "source", "source_key", "period_start", "period_end", "content",
                "embedding", "embedding_model")
COPY_TYPES = ("uuid", "uuid", "text", "text", "date", "date", "text", "vector", "text")


def _unit(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


@dataclass
class OrgSpace:
    """One organization's part of the mixture: its topics, their weights and its offset direction."""

    index: int
    chunks: int
    topics: np.ndarray  # topic numbers
    weights: np.ndarray  # probabilities over `topics`
    offset: np.ndarray  # unit vector


class ChunkSpace:
    """The seeded mixture model (global topics; per-organization topics, weights and offsets)."""

    def __init__(self, seed: int, dim: int = DIM) -> None:
        self.seed = seed
        self.dim = dim
        rng = np.random.default_rng([seed, 384])
        self.centres = _unit(rng.standard_normal((TOPICS, dim)))
        # An orthonormal local basis per topic (QR of a random matrix): rows span the topic's manifold.
        self.bases = np.stack([np.linalg.qr(rng.standard_normal((dim, LOCAL_DIMS)))[0].T for _ in range(TOPICS)])

    def org(self, index: int, chunks: int) -> OrgSpace:
        rng = np.random.default_rng([self.seed, 1, index])
        count = int(min(48, max(4, 4 + 2 * math.log2(max(chunks, 1) / 100))))
        topics = rng.choice(TOPICS, size=count, replace=False)
        weights = 1.0 / np.arange(1, count + 1) ** 0.8
        return OrgSpace(index, chunks, topics, weights / weights.sum(), _unit(rng.standard_normal(self.dim)))

    def draw(self, org: OrgSpace, n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """n unit vectors (float32) of the organization and the topic number of each."""
        which = rng.choice(len(org.topics), size=n, p=org.weights)
        topic = org.topics[which]
        local = np.einsum("nk,nkd->nd", rng.standard_normal((n, LOCAL_DIMS)), self.bases[topic])
        v = (self.centres[topic] + ORG_OFFSET * org.offset + SPREAD * local
             + NOISE * rng.standard_normal((n, self.dim)) / math.sqrt(self.dim))
        return _unit(v).astype(np.float32), topic

    def queries(self, org: OrgSpace, n: int, salt: int = 0) -> np.ndarray:
        """Query vectors for an organization: fresh draws from its own distribution (seeded, not stored)."""
        return self.draw(org, n, np.random.default_rng([self.seed, 2, org.index, salt]))[0]


def chunk_sizes(orgs: int, chunks: int, s: float) -> list[int]:
    from bench.generate import zipf_sizes  # generate imports this module

    return zipf_sizes(orgs, chunks, s)


def _text(rng: np.random.Generator, topic: int, org_no: int, artist_no: int, week: int) -> str:
    provider = PROVIDER_WORDS[topic % len(PROVIDER_WORDS)]
    metric = METRIC_WORDS[(topic // len(PROVIDER_WORDS)) % len(METRIC_WORDS)]
    verb = VERBS[(topic // 32 + int(rng.integers(0, 3))) % len(VERBS)]
    before = int(rng.integers(100, 3_000_000))
    pct = float(rng.uniform(0.1, 60.0))
    after = round(before * (1 + pct / 100))
    return (f"{provider} {metric} for Artist {org_no}-{artist_no} {verb} {pct:.1f}% "
            f"({before:,} -> {after:,}) in week {week} (topic {topic})")


def _org_rows(space: ChunkSpace, org: OrgSpace, org_id: Any, artists: Sequence[Any], start: date,
              days: int) -> Iterator[tuple[Any, ...]]:
    rng = np.random.default_rng([space.seed, 3, org.index])
    weeks = max(1, days // 7)
    sources = [name for name, _ in SOURCES]
    source_p = [p for _, p in SOURCES]
    done = 0
    while done < org.chunks:
        n = min(BATCH, org.chunks - done)
        vectors, topics = space.draw(org, n, rng)
        src = rng.choice(len(sources), size=n, p=source_p)
        week = rng.integers(0, weeks, size=n)
        artist = rng.integers(0, len(artists), size=n)
        for i in range(n):
            first = start + timedelta(days=7 * int(week[i]))
            yield (org_id, artists[artist[i]], sources[src[i]], f"bench-{done + i}", first, first + timedelta(days=6),
                   _text(rng, int(topics[i]), org.index, int(artist[i]) + 1, int(week[i]) + 1), vectors[i], MODEL)
        done += n


def _load_part(url: str, space: ChunkSpace, orgs: Sequence[tuple[OrgSpace, Any, list[Any]]], start: date,
               days: int) -> int:
    rows = 0
    with benchdb.connect(url) as conn:
        register_vector(conn)
        with conn.cursor() as cur, cur.copy(
            f"copy public.documents ({', '.join(COPY_COLUMNS)}) from stdin (format binary)"
        ) as copy:
            copy.set_types(list(COPY_TYPES))
            for org, org_id, artists in orgs:
                for row in _org_rows(space, org, org_id, artists, start, days):
                    copy.write_row(row)
                    rows += 1
    return rows


def documents_indexes(conn: psycopg.Connection[Any]) -> list[dict[str, Any]]:
    """The secondary indexes of public.documents (not those behind constraints), as SQL to recreate them."""
    return conn.execute(
        "select c.relname, pg_get_indexdef(i.indexrelid) as indexdef from pg_index as i "
        "join pg_class as c on c.oid = i.indexrelid "
        "where i.indrelid = 'public.documents'::regclass "
        "and not exists (select from pg_constraint as k where k.conindid = i.indexrelid) order by c.relname"
    ).fetchall()


def hnsw_memory(chunks: int, dim: int = DIM) -> int:
    """maintenance_work_mem (MB) for the HNSW build: graph in memory (vector + ~2m neighbours), 2x headroom, capped."""
    ram = (benchdb.machine_info()["ram_bytes"] or 4 * 2**30) // 2**20
    need = chunks * (dim * 4 + 16 * 2 * 8 + 200) * 2 // 2**20
    return int(max(256, min(need, ram * 0.4)))


def load_chunks(url: str, spec: Any, *, jobs: int, log: Callable[[str], None] = print
                ) -> tuple[dict[str, int], dict[str, float]]:
    """Empty public.documents and fill it with `spec.chunks` chunks; returns counts and the time of each step."""
    timings: dict[str, float] = {}
    space = ChunkSpace(spec.seed)
    with benchdb.connect(url) as conn:
        orgs = conn.execute("select id, slug from public.organizations order by slug").fetchall()
        artists: dict[Any, list[Any]] = {}
        for r in conn.execute("select org_id, id from public.artists order by org_id, id"):
            artists.setdefault(r["org_id"], []).append(r["id"])
        sizes = chunk_sizes(len(orgs), spec.chunks, spec.zipf_s)
        conn.execute("truncate public.documents restart identity")
        conn.execute("alter table public.documents set (autovacuum_enabled = false)")
        saved = documents_indexes(conn)
        for ix in saved:
            conn.execute(f"drop index public.{ix['relname']}")
    plan = [(space.org(i, n), o["id"], artists.get(o["id"]) or [None]) for i, (o, n) in enumerate(zip(orgs, sizes,
                                                                                                      strict=True), 1)]
    # Deal organizations round-robin by size so each loader gets about the same number of rows.
    parts: list[list[tuple[OrgSpace, Any, list[Any]]]] = [[] for _ in range(max(1, jobs))]
    for k, item in enumerate(plan):
        parts[k % len(parts)].append(item)
    t0 = time.perf_counter()
    with ThreadPoolExecutor(max_workers=len(parts)) as pool:
        loaded = sum(f.result() for f in [pool.submit(_load_part, url, space, p, spec.start_day, spec.days)
                                          for p in parts])
    timings["chunks_load"] = time.perf_counter() - t0
    log(f"  {'chunks_load':<24} {timings['chunks_load']:8.1f} s  ({loaded:,} chunks, {jobs} loaders)")

    hnsw = [ix for ix in saved if ix["relname"] == HNSW_INDEX]
    others = [ix for ix in saved if ix["relname"] != HNSW_INDEX]
    mem = hnsw_memory(spec.chunks)
    for ix in hnsw:
        t0 = time.perf_counter()
        with benchdb.connect(url) as conn:
            conn.execute(f"set maintenance_work_mem = '{mem}MB'")
            conn.execute(f"set max_parallel_maintenance_workers = {max(0, jobs - 1)}")
            conn.execute(ix["indexdef"])
        timings["chunks_hnsw_index"] = time.perf_counter() - t0
        log(f"  {'chunks_hnsw_index':<24} {timings['chunks_hnsw_index']:8.1f} s  (maintenance_work_mem {mem} MB, "
            f"{max(0, jobs - 1)} parallel workers)")

    def build(sql: str) -> None:
        with benchdb.connect(url) as c:
            c.execute("set maintenance_work_mem = '512MB'")
            c.execute(sql)

    t0 = time.perf_counter()
    with ThreadPoolExecutor(max_workers=max(1, min(jobs, len(others)))) as pool:
        for f in [pool.submit(build, ix["indexdef"]) for ix in others]:
            f.result()
    timings["chunks_other_indexes"] = time.perf_counter() - t0
    log(f"  {'chunks_other_indexes':<24} {timings['chunks_other_indexes']:8.1f} s  "
        f"({', '.join(ix['relname'] for ix in others)})")
    with benchdb.connect(url) as conn:
        conn.execute("alter table public.documents reset (autovacuum_enabled)")
        t0 = time.perf_counter()
        conn.execute("vacuum (analyze) public.documents")
        timings["chunks_vacuum_analyze"] = time.perf_counter() - t0
        after = documents_indexes(conn)
        if after != saved:
            raise ArtiError(f"public.documents indexes differ after the load: {saved} != {after}")
        sizes_db = conn.execute(
            "select count(*) as n, pg_total_relation_size('public.documents') as total, "
            f"pg_relation_size('public.{HNSW_INDEX}') as hnsw from public.documents").fetchone()
    if sizes_db["n"] != spec.chunks:
        raise ArtiError(f"expected {spec.chunks} chunks, found {sizes_db['n']}")
    counts = {"chunks": sizes_db["n"], "chunks_bytes": sizes_db["total"], "chunks_hnsw_bytes": sizes_db["hnsw"],
              "chunks_largest_org": max(sizes), "chunks_smallest_org": min(sizes)}
    return counts, timings
