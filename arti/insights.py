"""Answers built by retrieval: search as the user, then an LLM (OpenAI-compatible chat API) or,
with none configured, a grounded extractive answer clearly labelled as such. Every answer is
stored as an insight (kind answer) with the chunk ids it cites.
"""

from __future__ import annotations

import json
import re
import uuid
from dataclasses import dataclass, field
from typing import Any

import httpx
import psycopg

from arti.embeddings import Embedder, EmbeddingError
from arti.errors import ArtiError

TOP_K = 5
MAX_SEARCH_WORDS = 32
"""A question holding more search terms than public.search_documents accepts (64) is searched in full text on its
first 32 distinct words other than stop words; the embedding still reads the whole question."""
SEARCH_TERMS_MAX_NODES = 127
"""search_documents' bound on numnode(websearch_to_tsquery('english', query)): 64 terms and the operators between."""
WORD = re.compile(r"[^\W_]+")
# PostgreSQL's english.stop (Snowball), the words the 'english' text search configuration drops.
STOP_WORDS = frozenset((
    "i", "me", "my", "myself", "we", "our", "ours", "ourselves", "you", "your", "yours", "yourself", "yourselves",
    "he", "him", "his", "himself", "she", "her", "hers", "herself", "it", "its", "itself", "they", "them", "their",
    "theirs", "themselves", "what", "which", "who", "whom", "this", "that", "these", "those", "am", "is", "are",
    "was", "were", "be", "been", "being", "have", "has", "had", "having", "do", "does", "did", "doing", "a", "an",
    "the", "and", "but", "if", "or", "because", "as", "until", "while", "of", "at", "by", "for", "with", "about",
    "against", "between", "into", "through", "during", "before", "after", "above", "below", "to", "from", "up",
    "down", "in", "out", "on", "off", "over", "under", "again", "further", "then", "once", "here", "there", "when",
    "where", "why", "how", "all", "any", "both", "each", "few", "more", "most", "other", "some", "such", "no",
    "nor", "not", "only", "own", "same", "so", "than", "too", "very", "s", "t", "can", "will", "just", "don",
    "should", "now",
))
MAX_LLM_RESPONSE_BYTES = 1024 * 1024
"""A chat response larger than this is refused (the answer falls back to the retrieved facts)."""
MAX_ANSWER_CHARS = 8000
"""A model's answer longer than this is cut, with a note saying so."""
MAX_BODY_CHARS = 24_000
"""The longest insight text stored (the check constraint insights_body_length says the same)."""
CITATION = re.compile(r"\[(\d+)\]")
SYSTEM_PROMPT = (
    "You are the analytics assistant of a music marketing team. Answer the question using ONLY the numbered "
    "facts given. Cite every fact you use with its number in square brackets, like [12]. If the facts do not "
    "answer the question, say so plainly. Keep numbers exactly as written. Be brief."
)


class LLMError(ArtiError):
    """The chat model could not answer (unreachable, timeout, refused)."""


@dataclass
class Answer:
    """What /insights/ask returns."""

    insight_id: uuid.UUID | None
    text: str
    mode: str
    citations: list[dict[str, Any]] = field(default_factory=list)
    note: str | None = None


def vector_literal(vector: list[float]) -> str:
    return "[" + ",".join(f"{x:.7f}" for x in vector) + "]"


def search_words(question: str, limit: int = MAX_SEARCH_WORDS) -> str:
    """The question's first `limit` distinct words other than stop words, space-separated. Each word is a run of
    letters and digits, which Postgres' parser reads as one token, so the text holds at most `limit` search terms
    (no operator, phrase or negation of websearch syntax survives)."""
    kept: dict[str, str] = {}
    for word in WORD.findall(question):
        key = word.casefold()
        if key not in STOP_WORDS and key not in kept:
            kept[key] = word
            if len(kept) == limit:
                break
    return " ".join(kept.values())


async def retrieve(conn: psycopg.AsyncConnection[Any], org_id: uuid.UUID, question: str,
                   artist_id: uuid.UUID | None, embedder: Embedder | None, *, mode: str = "hybrid",
                   k: int = TOP_K) -> list[dict[str, Any]]:
    """Hybrid search through public.search_documents on the caller's connection (RLS applies).

    The question is searched as asked when it holds at most 64 search terms (search_documents' bound, checked by
    Postgres in the same statement); a longer one, up to the question's 2000 characters, is searched in full text on
    `search_words(question)`, so it is answered instead of refused."""
    embedding = None
    if embedder is not None and mode != "fulltext":
        try:
            embedding = vector_literal((await embedder.embed([question]))[0])
        except EmbeddingError:
            embedding = None  # full text alone still answers
    if mode == "vector" and embedding is None:
        return []
    cur = await conn.execute(
        "select id, chunk_artist_id, source, period_start, period_end, content, fulltext_rank, vector_rank, score "
        "from public.search_documents(%(org)s, case when numnode(websearch_to_tsquery('english', %(question)s)) "
        "<= %(max_nodes)s then %(question)s else %(words)s end, %(embedding)s::extensions.vector, %(artist)s, "
        "%(k)s, %(mode)s)",
        {"org": org_id, "question": question, "max_nodes": SEARCH_TERMS_MAX_NODES,
         "words": search_words(question), "embedding": embedding, "artist": artist_id, "k": k, "mode": mode},
    )
    return list(await cur.fetchall())


class ChatModel:
    """An OpenAI-compatible /v1/chat/completions endpoint."""

    def __init__(self, base_url: str, model: str, *, api_key: str | None = None, timeout: float = 30.0,
                 http: httpx.AsyncClient | None = None) -> None:
        root = base_url.rstrip("/")
        self._url = root + ("/chat/completions" if root.endswith("/v1") else "/v1/chat/completions")
        self.model = model
        self._headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._http = http or httpx.AsyncClient(timeout=timeout)

    async def complete(self, question: str, facts: list[dict[str, Any]]) -> str:
        numbered = "\n".join(f"[{f['id']}] {f['content']}" for f in facts)
        body = {
            "model": self.model,
            "temperature": 0,
            "messages": [
                {"role": "system", "content": SYSTEM_PROMPT},
                {"role": "user", "content": f"Facts:\n{numbered}\n\nQuestion: {question}"},
            ],
        }
        try:
            async with self._http.stream("POST", self._url, json=body, headers=self._headers) as response:
                if response.status_code >= 400:
                    raise LLMError(f"the language model answered HTTP {response.status_code}")
                raw = await _read_bounded(response, MAX_LLM_RESPONSE_BYTES)
        except httpx.HTTPError as exc:
            raise LLMError(f"the language model is unreachable ({type(exc).__name__})") from None
        try:
            return str(json.loads(raw)["choices"][0]["message"]["content"]).strip()
        except (KeyError, IndexError, TypeError, ValueError, RecursionError):
            raise LLMError("the language model's answer had no message content") from None


async def _read_bounded(response: httpx.Response, limit: int) -> bytes:
    """The response body, or LLMError as soon as it is longer than `limit` bytes."""
    too_large = LLMError(f"the language model's response is over {limit // 1024} KiB; it was not read")
    declared = response.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise too_large
    chunks: list[bytes] = []
    size = 0
    async for chunk in response.aiter_bytes():
        size += len(chunk)
        if size > limit:
            raise too_large
        chunks.append(chunk)
    return b"".join(chunks)


def bounded(text: str, limit: int, what: str) -> tuple[str, str | None]:
    """`text` cut to at most `limit` characters with a visible marker, and a note when it was cut."""
    if len(text) <= limit:
        return text, None
    marker = f"\n\n[{what} had {len(text)} characters; cut here]"
    return text[:limit - len(marker)] + marker, f"{what} had {len(text)} characters; cut to {limit}"


def extractive_answer(facts: list[dict[str, Any]]) -> str:
    if not facts:
        return "No facts in this organization's data match the question."
    lines = [f"- {f['content']} [{f['id']}]" for f in facts]
    return "Retrieved facts (extractive answer; no language model is configured):\n" + "\n".join(lines)


async def answer_question(conn: psycopg.AsyncConnection[Any], org_id: uuid.UUID, question: str, *,
                          artist_id: uuid.UUID | None = None, embedder: Embedder | None = None,
                          llm: ChatModel | None = None) -> Answer:
    """Retrieve, answer and store, all on `conn`, which must already act as the user."""
    facts = await retrieve(conn, org_id, question, artist_id, embedder)
    by_id = {f["id"]: f for f in facts}
    note = None
    if llm is not None and facts:
        try:
            text, note = bounded(await llm.complete(question, facts), MAX_ANSWER_CHARS, "the model's answer")
            cited = [int(n) for n in CITATION.findall(text) if int(n) in by_id]
            mode = "llm"
        except LLMError as exc:
            text, cited, mode = extractive_answer(facts), list(by_id), "extractive"
            note = f"{exc}; showing the retrieved facts instead"
    else:
        text, cited, mode = extractive_answer(facts), list(by_id), "extractive"
    text, cut = bounded(text, MAX_BODY_CHARS, "the answer")
    note = note or cut
    cited = list(dict.fromkeys(cited))
    citations = [{"id": i, "content": by_id[i]["content"], "source": by_id[i]["source"],
                  "period_start": str(by_id[i]["period_start"]) if by_id[i]["period_start"] else None,
                  "period_end": str(by_id[i]["period_end"]) if by_id[i]["period_end"] else None} for i in cited]
    # The only write path for a user's answer: private.record_answer checks insights.ask, the artist and the
    # citations in the organization and bounds every input (users have no INSERT on public.insights).
    cur = await conn.execute(
        "select private.record_answer(%s, %s, %s, %s, %s, %s, %s) as id",
        (org_id, artist_id, question, text, json.dumps(cited), mode,
         json.dumps({"retrieved": list(by_id), "note": note} if note else {"retrieved": list(by_id)})),
    )
    row = await cur.fetchone()
    insight_id = (row["id"] if isinstance(row, dict) else row[0]) if row else None
    return Answer(insight_id, text, mode, citations, note)
