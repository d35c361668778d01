"""Insight jobs: after a sync, find anomalies and rebuild the artist's chunks; embed chunks in batches."""

from __future__ import annotations

import contextlib
import logging
from typing import Any

import procrastinate
import psycopg
from psycopg.rows import dict_row

from arti.embeddings import Embedder, EmbeddingError, embedder_from_settings
from arti.insights import vector_literal
from arti.settings import get_settings
from jobs.app import app

logger = logging.getLogger(__name__)

EMBED_BATCH = 64
_embedder: Embedder | None = None
_embedder_loaded = False


def configured_embedder() -> Embedder | None:
    """The worker's embedder, created once (the local model takes seconds to load)."""
    global _embedder, _embedder_loaded
    if not _embedder_loaded:
        _embedder = embedder_from_settings(get_settings())
        _embedder_loaded = True
    return _embedder


async def _connect() -> psycopg.AsyncConnection[Any]:
    return await psycopg.AsyncConnection.connect(get_settings().database_url(), autocommit=True,
                                                 row_factory=dict_row)


@app.task(name="refresh_insights", queue="insights")
async def refresh_insights(account_id: str) -> dict[str, int]:
    """Anomalies for the account, then the artist's chunks; embedding follows in its own job."""
    async with await _connect() as conn:
        anomalies = (await (await conn.execute("select private.detect_anomalies(%s) as n", (account_id,)))
                     .fetchone())["n"]
        cur = await conn.execute("select private.refresh_documents(artist_id) as n from public.connected_accounts "
                                 "where id = %s", (account_id,))
        row = await cur.fetchone()
    chunks = row["n"] if row else 0
    if chunks and configured_embedder() is not None:
        with contextlib.suppress(procrastinate.exceptions.AlreadyEnqueued):
            await embed_documents.configure(queueing_lock="embed_documents").defer_async()
    return {"anomalies": anomalies, "chunks": chunks}


class EmbedRetry(procrastinate.BaseRetryStrategy):
    def get_retry_decision(self, *, exception: BaseException, job: procrastinate.jobs.Job) -> Any:
        if isinstance(exception, EmbeddingError) and exception.retryable and job.attempts < 5:
            return procrastinate.RetryDecision(retry_in={"seconds": 10 * 2 ** job.attempts})
        return None


async def embed_pending(conn: psycopg.AsyncConnection[Any], embedder: Embedder, *, limit: int = 10_000) -> int:
    """Embed chunks without an embedding or with another model's, in batches. Returns how many."""
    done = 0
    while done < limit:
        cur = await conn.execute(
            "select id, content from public.documents where embedding is null or embedding_model <> %s "
            "order by id limit %s", (embedder.model, EMBED_BATCH))
        batch = await cur.fetchall()
        if not batch:
            break
        vectors = await embedder.embed([r["content"] for r in batch])
        async with conn.cursor() as update:
            await update.executemany(
                "update public.documents set embedding = %s::extensions.vector, embedding_model = %s where id = %s",
                [(vector_literal(v), embedder.model, r["id"]) for r, v in zip(batch, vectors, strict=True)],
            )
        done += len(batch)
    return done


@app.task(name="embed_documents", queue="insights", retry=EmbedRetry())
async def embed_documents() -> int:
    """Embed what is pending with the configured model (nothing to do without one)."""
    embedder = configured_embedder()
    if embedder is None:
        return 0
    async with await _connect() as conn:
        count = await embed_pending(conn, embedder)
    logger.info("embedded %s chunk(s) with %s", count, embedder.model)
    return count
