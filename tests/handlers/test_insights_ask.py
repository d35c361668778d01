"""POST /functions/v1/insights/ask through the ASGI app: as the user, grounded, stored, cited."""

from __future__ import annotations

from typing import Any

import httpx
import psycopg
import respx

from tests.factories import World
from tests.handlers.conftest import bearer, make_settings, running

URL = "/functions/v1/insights/ask"


def add_chunks(conn: psycopg.Connection[Any], world: World) -> int:
    row = conn.execute(
        "insert into public.documents (org_id, artist_id, source, source_key, content) values "
        "(%s, %s, 'campaign', 'c1', 'Campaign \"Moonrise\" for Artist A (active, budget 12000 USD). TikTok push.') "
        "returning id", (world.ids["org_a"], world.ids["artist_a"])).fetchone()
    conn.execute("insert into public.documents (org_id, artist_id, source, source_key, content) values "
                 "(%s, %s, 'campaign', 'c2', 'Campaign \"Moonrise\" for Artist B (budget 99 USD).')",
                 (world.ids["org_b"], world.ids["artist_b"]))
    return row["id"]


async def test_analyst_gets_a_grounded_extractive_answer_that_is_stored(
    client: httpx.AsyncClient, conn: psycopg.Connection[Any], world: World
) -> None:
    chunk = add_chunks(conn, world)
    response = await client.post(URL, headers=bearer(world.users["analyst"]),
                                 json={"org_id": str(world.ids["org_a"]), "question": "Moonrise campaign budget?"})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["mode"] == "extractive" and "no language model is configured" in body["answer"]
    assert [c["id"] for c in body["citations"]] == [chunk]  # org B's chunk never leaks in
    stored = conn.execute("select kind::text, created_by, citations from public.insights where id = %s",
                          (body["insight_id"],)).fetchone()
    assert stored == {"kind": "answer", "created_by": world.users["analyst"], "citations": [chunk]}


async def test_who_may_not_ask_is_refused(client: httpx.AsyncClient, conn: psycopg.Connection[Any],
                                          world: World) -> None:
    add_chunks(conn, world)
    payload = {"org_id": str(world.ids["org_a"]), "question": "Moonrise campaign budget?"}
    for persona in ("viewer", "outsider", "owner_b"):
        response = await client.post(URL, headers=bearer(world.users[persona]), json=payload)
        assert response.status_code == 403, persona
        assert response.json()["error"] == "forbidden"
    assert (await client.post(URL, json=payload)).status_code == 401
    bad = await client.post(URL, headers=bearer(world.users["analyst"]), json={"org_id": "nope", "question": "x"})
    assert bad.status_code == 400 and set(bad.json()) == {"error", "message"}
    assert conn.execute("select count(*) as n from public.insights where kind = 'answer' and org_id = %s",
                        (world.ids["org_a"],)).fetchone()["n"] == 0


async def test_llm_answer_through_an_openai_compatible_api(database_url: str, conn: psycopg.Connection[Any],
                                                           world: World) -> None:
    chunk = add_chunks(conn, world)
    settings = make_settings(database_url, llm_base_url="http://llm.test/v1", llm_model="tiny")
    with respx.mock(assert_all_mocked=True) as router:
        route = router.post("http://llm.test/v1/chat/completions").mock(return_value=httpx.Response(200, json={
            "id": "c1", "object": "chat.completion", "created": 1, "model": "tiny",
            "choices": [{"index": 0, "finish_reason": "stop",
                         "message": {"role": "assistant", "content": f"The budget is 12000 USD [{chunk}]."}}],
        }))
        async with httpx.AsyncClient() as outbound, running(settings, outbound) as client:
            response = await client.post(URL, headers=bearer(world.users["analyst"]),
                                         json={"org_id": str(world.ids["org_a"]), "question": "Moonrise budget?"})
    assert response.status_code == 200, response.text
    assert response.json()["mode"] == "llm" and response.json()["answer"].endswith(f"[{chunk}].")
    prompt = route.calls.last.request.content.decode()
    assert "Artist A" in prompt and "Artist B" not in prompt  # only the caller's chunks reach the model


async def test_a_question_of_2000_characters_is_answered(client: httpx.AsyncClient, conn: psycopg.Connection[Any],
                                                         world: World) -> None:
    """More search terms than search_documents accepts (64): the ask path searches the question's first words."""
    chunk = add_chunks(conn, world)
    question = ("Moonrise campaign budget? " + " ".join(f"detail{i} context{i} aspect{i}" for i in range(100)))[:2000]
    assert conn.execute("select numnode(websearch_to_tsquery('english', %s)) > 127 as over",
                        (question,)).fetchone()["over"]
    response = await client.post(URL, headers=bearer(world.users["analyst"]),
                                 json={"org_id": str(world.ids["org_a"]), "question": question})
    assert response.status_code == 200, response.text
    assert [c["id"] for c in response.json()["citations"]] == [chunk]
