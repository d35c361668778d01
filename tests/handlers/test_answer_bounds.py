"""An insight's text is bounded: in arti/insights.py (a model's answer is cut or refused) and in the table."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
import respx

from arti.insights import MAX_ANSWER_CHARS, MAX_BODY_CHARS, MAX_LLM_RESPONSE_BYTES
from arti.settings import PROJECT_ROOT
from tests.factories import World
from tests.handlers.conftest import bearer, make_settings, running
from tests.harness import TestDB

URL = "/functions/v1/insights/ask"
LLM = "http://llm.test/v1/chat/completions"
MIGRATION = PROJECT_ROOT / "supabase" / "migrations" / "20261130000300_edge_input_bounds.sql"


def completion(content: str) -> dict[str, Any]:
    return {"id": "c1", "object": "chat.completion", "created": 1, "model": "tiny",
            "choices": [{"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": content}}]}


def add_chunk(conn: psycopg.Connection[Any], world: World) -> int:
    return int(conn.execute(
        "insert into public.documents (org_id, artist_id, source, source_key, content) values (%s, %s, 'campaign', "
        "'c1', 'Campaign \"Moonrise\" for Artist A (budget 12000 USD).') returning id",
        (world.ids["org_a"], world.ids["artist_a"])).fetchone()["id"])


async def ask_with_llm(database_url: str, world: World, reply: httpx.Response) -> httpx.Response:
    settings = make_settings(database_url, llm_base_url="http://llm.test/v1", llm_model="tiny")
    with respx.mock(assert_all_mocked=True) as router:
        router.post(LLM).mock(return_value=reply)
        async with httpx.AsyncClient() as outbound, running(settings, outbound) as client:
            return await client.post(URL, headers=bearer(world.users["analyst"]),
                                     json={"org_id": str(world.ids["org_a"]), "question": "Moonrise budget?"})


def stored_body(conn: psycopg.Connection[Any], insight_id: str) -> str:
    return str(conn.execute("select body from public.insights where id = %s", (insight_id,)).fetchone()["body"])


async def test_a_long_answer_is_cut_with_a_note(database_url: str, conn: psycopg.Connection[Any],
                                                world: World) -> None:
    chunk = add_chunk(conn, world)
    answer = f"The budget is 12000 USD [{chunk}]. " + "Blah. " * 10_000 + "[999999]"
    response = await ask_with_llm(database_url, world, httpx.Response(200, json=completion(answer)))
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["mode"] == "llm"
    assert len(body["answer"]) <= MAX_ANSWER_CHARS and body["answer"].endswith("characters; cut here]")
    assert body["answer"].startswith("The budget is 12000 USD")
    assert str(len(answer)) in body["note"]
    assert [c["id"] for c in body["citations"]] == [chunk]  # what was cut away cites nothing
    assert stored_body(conn, body["insight_id"]) == body["answer"]


async def test_a_response_over_the_limit_is_not_read_and_the_facts_answer(database_url: str,
                                                                          conn: psycopg.Connection[Any],
                                                                          world: World) -> None:
    add_chunk(conn, world)
    huge = json.dumps(completion("x" * (3 * 1024 * 1024))).encode()  # the 3 MB answer that was stored whole
    assert len(huge) > MAX_LLM_RESPONSE_BYTES
    for reply in (httpx.Response(200, content=huge, headers={"Content-Type": "application/json"}),
                  httpx.Response(200, stream=httpx.ByteStream(huge))):  # streamed: no Content-Length to go by
        response = await ask_with_llm(database_url, world, reply)
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["mode"] == "extractive" and "Moonrise" in body["answer"]
        assert "over 1024 KiB" in body["note"]
        assert len(stored_body(conn, body["insight_id"])) < 1000


def test_the_table_refuses_an_oversized_insight(db: TestDB) -> None:
    org = db.value("insert into public.organizations (name, slug) values ('Bounds', 'bounds-test') returning id")
    insert = ("insert into public.insights (org_id, kind, title, body, metric, dedupe_key) "
              "values (%s, 'anomaly', 't', %s, %s, %s)")
    db.execute(insert, (org, "b" * MAX_BODY_CHARS, "m" * 63, "k" * 300))
    for body, metric, key in (("b" * (MAX_BODY_CHARS + 1), "m", "k1"), ("b", "m" * 64, "k2"),
                              ("b", "m", "k" * 301)):
        with pytest.raises(psycopg.errors.CheckViolation), db.conn.transaction():
            db.execute(insert, (org, body, metric, key))


def test_the_migration_cuts_existing_oversized_bodies(db: TestDB) -> None:
    """Applied over a database that already holds a 3 MB answer, the migration cuts it and then validates."""
    for name in ("insights_body_length", "insights_metric_length", "insights_dedupe_key_length"):
        db.execute(f"alter table public.insights drop constraint {name}")
    org = db.value("insert into public.organizations (name, slug) values ('Old', 'old-bounds') returning id")
    big = db.value("insert into public.insights (org_id, kind, title, body, question, answer_mode) values "
                   "(%s, 'answer', 'q', %s, 'q', 'llm') returning id", (org, "y" * 3_000_000))
    small = db.value("insert into public.insights (org_id, kind, title, body, question, answer_mode) values "
                     "(%s, 'answer', 'q', 'short answer', 'q', 'llm') returning id", (org,))
    db.conn.execute(Path(MIGRATION).read_text())
    cut = db.value("select body from public.insights where id = %s", (big,))
    assert len(cut) == MAX_BODY_CHARS and cut.endswith("[truncated: over 24000 characters]")
    assert db.value("select body from public.insights where id = %s", (small,)) == "short answer"
    assert db.value("select count(*) from pg_constraint where conrelid = 'public.insights'::regclass "
                    "and conname like 'insights_%%_length' and convalidated") == 3
