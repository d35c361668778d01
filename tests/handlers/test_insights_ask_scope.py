"""POST /functions/v1/insights/ask with an artist_id (issue 16 item 1): it must be an artist of the organization asked
about. Another organization's artist and an unknown id get the same 404, and nothing is stored or emitted."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import psycopg

from tests.factories import World
from tests.handlers.conftest import bearer, count

URL = "/functions/v1/insights/ask"


def written(conn: psycopg.Connection[Any], world: World) -> dict[str, int]:
    orgs = [world.ids["org_a"], world.ids["org_b"]]
    return {
        "answers": count(conn, "select count(*) from public.insights where kind = 'answer' and org_id = any(%s)",
                         (orgs,)),
        "events": count(conn, "select count(*) from private.outbox where type = 'insight.created' "
                              "and org_id = any(%s)", (orgs,)),
    }


async def test_another_orgs_artist_is_refused_like_an_unknown_one_and_nothing_is_stored(
    client: httpx.AsyncClient, conn: psycopg.Connection[Any], world: World
) -> None:
    before = written(conn, world)
    answers = []
    for artist in (world.ids["artist_b"], uuid.uuid4()):
        response = await client.post(URL, headers=bearer(world.users["analyst"]), json={
            "org_id": str(world.ids["org_a"]), "artist_id": str(artist), "question": "How did followers change?"})
        answers.append((response.status_code, response.json()))
    assert answers[0] == answers[1], "another organization's artist must answer exactly like an unknown id"
    assert answers[0] == (404, {"error": "not_found", "message": "artist not found in this organization"})
    assert written(conn, world) == before


async def test_the_organizations_own_artist_is_stored_with_the_answer(
    client: httpx.AsyncClient, conn: psycopg.Connection[Any], world: World
) -> None:
    response = await client.post(URL, headers=bearer(world.users["analyst"]), json={
        "org_id": str(world.ids["org_a"]), "artist_id": str(world.ids["artist_a"]),
        "question": "How did followers change?"})
    assert response.status_code == 200, response.text
    stored = conn.execute("select org_id, artist_id, created_by from public.insights where id = %s",
                          (response.json()["insight_id"],)).fetchone()
    assert stored == {"org_id": world.ids["org_a"], "artist_id": world.ids["artist_a"],
                      "created_by": world.users["analyst"]}
