"""POST /functions/v1/insights/ask: retrieve as the user, answer (LLM or extractive), store, cite."""

from __future__ import annotations

import uuid
from typing import Any

from pydantic import ConfigDict, Field
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from arti.embeddings import Embedder, embedder_from_settings
from arti.insights import ChatModel, answer_question
from handlers.db import as_user, fetch_one
from handlers.errors import HandlerError
from handlers.inputs import Input, json_body
from handlers.ratelimit import admit_member
from handlers.services import Services, authenticate, services

ASK_REFUSAL = "asking needs the insights.ask permission (analyst or above) in this organization"
ARTIST_NOT_FOUND = "artist not found in this organization"


class AskBody(Input):
    """The question, scoped to an organization and optionally one artist."""

    model_config = ConfigDict(extra="forbid")

    org_id: uuid.UUID
    artist_id: uuid.UUID | None = None
    question: str = Field(min_length=3, max_length=2000)


def _answering(svc: Services, request: Request) -> tuple[Embedder | None, ChatModel | None]:
    """The embedder and chat model, created once per app (the local model takes seconds to load)."""
    state = request.app.state
    if not hasattr(state, "insights_models"):
        cfg = svc.settings
        llm = None
        if cfg.llm_base_url:
            key = cfg.llm_api_key.get_secret_value() if cfg.llm_api_key else None
            llm = ChatModel(cfg.llm_base_url, cfg.llm_model, api_key=key, timeout=cfg.llm_timeout_seconds,
                            http=getattr(state, "llm_http", None))
        state.insights_models = (embedder_from_settings(cfg), llm)
    return state.insights_models  # type: ignore[no-any-return]


async def ask(request: Request) -> Response:
    svc = services(request)
    claims = await authenticate(request)
    raw = await json_body(request, '{"org_id": "...", "question": "...", "artist_id": "... (optional)"}')
    body = AskBody.model_validate(raw)
    # Permission, then the per-user and per-organization rate limits, before retrieval and the LLM.
    await admit_member(svc, claims.as_dict(), body.org_id, route="insights_ask", permission="insights.ask",
                       refusal=ASK_REFUSAL)
    embedder, llm = _answering(svc, request)
    async with as_user(svc.pool, claims.as_dict(), svc.db_timeout) as conn:
        allowed = await fetch_one(conn, "select private.has_permission(%s, 'insights.ask') as ok", (body.org_id,))
        if not allowed or not allowed["ok"]:
            raise HandlerError(403, "forbidden", ASK_REFUSAL)
        if body.artist_id is not None:
            # Read as the user (RLS): an unknown id and another organization's get the same 404, before any
            # retrieval or LLM work. private.record_answer checks it again when storing.
            artist = await fetch_one(conn, "select exists (select 1 from public.artists where id = %s and org_id = %s)"
                                           " as ok", (body.artist_id, body.org_id))
            if not artist or not artist["ok"]:
                raise HandlerError(404, "not_found", ARTIST_NOT_FOUND)
        answer = await answer_question(conn, body.org_id, body.question.strip(), artist_id=body.artist_id,
                                       embedder=embedder, llm=llm)
    payload: dict[str, Any] = {
        "insight_id": str(answer.insight_id), "answer": answer.text, "mode": answer.mode,
        "citations": answer.citations,
    }
    if answer.note:
        payload["note"] = answer.note
    return JSONResponse(payload)
