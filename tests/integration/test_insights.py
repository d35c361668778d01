"""Insights: anomalies found in SQL (right numbers, once), hybrid retrieval quality, grounded answers."""

from __future__ import annotations

import datetime as dt
import json
import statistics
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import psycopg
import pytest
import respx
from psycopg.rows import dict_row

from arti.insights import MAX_SEARCH_WORDS, ChatModel, answer_question, retrieve, search_words, vector_literal
from arti.settings import PROJECT_ROOT
from arti.users import INSERT_USER_SQL
from tests.factories import add_metric_series, build_world, create_account
from tests.harness import TestDB, gotrue_user

ORG = uuid.UUID("00000000-0000-4000-b000-000000000001")
VIEWER = "00000000-0000-4000-a000-000000000005"
ANALYST = "00000000-0000-4000-a000-000000000004"


def robust_z(x: float, window: list[float]) -> tuple[float, float]:
    median = statistics.median(window)
    mad = statistics.median([abs(v - median) for v in window])
    return median, 0.6745 * (x - median) / mad


def test_anomalies_found_with_the_right_numbers_once(db: TestDB) -> None:
    world = build_world(db)
    org, artist = world.ids["org_a"], world.ids["artist_a"]
    account = create_account(db, org, artist, "youtube")
    end = dt.date(2026, 11, 20)
    # Subscribers climb ~100/day with a little noise, then jump by 1,300 on the last-but-two day.
    gains = [100 + ((i * 7) % 5 - 2) * 3 for i in range(44)] + [1300, 101, 99]
    totals = [50_000.0]
    for gain in gains:
        totals.append(totals[-1] + gain)
    add_metric_series(db, org, account, "subscribers", totals, end)
    # Views hover around 20,000 and collapse to 2,000 on the last day.
    views = [20_000 + ((i * 11) % 7 - 3) * 150 for i in range(46)] + [2_000]
    add_metric_series(db, org, account, "views", views, end)

    assert db.value("select private.detect_anomalies(%s)", (account,)) == 2
    rows = db.execute("select metric, day, title, evidence from public.insights where account_id = %s "
                      "order by metric", (account,))
    spike, drop = rows
    spike_day = end - dt.timedelta(days=2)
    baseline, z = robust_z(1300, gains[-31:-3])
    assert (spike["metric"], spike["day"]) == ("subscribers", spike_day)
    assert spike["evidence"]["movement"] == 1300 and spike["evidence"]["baseline"] == baseline
    assert spike["evidence"]["robust_z"] == pytest.approx(z, abs=0.01)
    pct = round((1300 - baseline) / baseline * 100)
    assert spike["title"] == f"YouTube subscribers: +1,300 on {spike_day:%b %d} (+{pct}% vs usual)"
    baseline_views, z_views = robust_z(2_000, views[-29:-1])
    assert (drop["metric"], drop["day"]) == ("views", end)
    assert drop["evidence"]["baseline"] == baseline_views and drop["evidence"]["robust_z"] < -3.5
    assert drop["evidence"]["robust_z"] == pytest.approx(z_views, abs=0.01)
    # Not repeated: the same event is reported once.
    assert db.value("select private.detect_anomalies(%s)", (account,)) == 0
    assert db.value("select count(*) from public.insights where account_id = %s", (account,)) == 2


def test_steady_series_raises_nothing(db: TestDB) -> None:
    world = build_world(db)
    account = create_account(db, world.ids["org_a"], world.ids["artist_a"], "soundcloud")
    add_metric_series(db, world.ids["org_a"], account, "followers_count",
                      [1000.0 + 10 * i + (i % 3) for i in range(60)], dt.date(2026, 11, 20))
    assert db.value("select private.detect_anomalies(%s)", (account,)) == 0


def test_a_growing_running_total_raises_nothing_whatever_its_provider(db: TestDB) -> None:
    """YouTube's views_total and SoundCloud's tracks were scored as daily flows: a steadily growing total looked like
    an ever larger spike. Every *_total and *_count, and the listed totals, are running totals by construction."""
    world = build_world(db)
    for provider, metric in (("youtube", "views_total"), ("soundcloud", "tracks"), ("tiktok", "likes_total"),
                             ("instagram", "media_count")):
        account = create_account(db, world.ids["org_a"], world.ids["artist_a"], provider)
        add_metric_series(db, world.ids["org_a"], account, metric,
                          [1000.0 + 40 * i * i for i in range(60)], dt.date(2026, 11, 20))
        assert db.value("select private.metric_is_cumulative(%s)", (metric,)) is True, metric
        assert db.value("select private.detect_anomalies(%s)", (account,)) == 0, metric
    for flow in ("views", "plays", "reach", "accounts_engaged"):
        assert db.value("select private.metric_is_cumulative(%s)", (flow,)) is False, flow


# ---------------------------------------------------------------------------------------------
# retrieval over the seed data, with the real local embedding model
# ---------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def embedder() -> Any:
    from arti.embeddings import LocalMiniLMEmbedder

    return LocalMiniLMEmbedder()


@pytest.fixture
async def seeded(database_url: str, embedder: Any) -> AsyncIterator[psycopg.AsyncConnection[Any]]:
    """The demo seed with its chunks embedded, inside a transaction that is rolled back."""
    from jobs.insights import embed_pending

    conn = await psycopg.AsyncConnection.connect(database_url, row_factory=dict_row)
    try:
        await conn.execute((PROJECT_ROOT / "supabase" / "seed.sql").read_text().encode())
        await conn.execute("select private.detect_anomalies(id) from public.connected_accounts")
        await conn.execute("select private.refresh_documents(id) from public.artists")
        await embed_pending(conn, embedder)
        yield conn
    finally:
        await conn.rollback()
        await conn.close()


async def as_user(conn: psycopg.AsyncConnection[Any], user: str) -> None:
    await conn.execute("set local role authenticated")
    await conn.execute("select set_config('request.jwt.claims', %s, true)",
                       (json.dumps({"sub": user, "role": "authenticated"}),))


async def key_of(conn: psycopg.AsyncConnection[Any], doc_id: int) -> str:
    row = await (await conn.execute("select source || ':' || source_key as k from public.documents where id = %s",
                                    (doc_id,))).fetchone()
    return row["k"]


def labelled_questions(today: dt.date) -> list[tuple[str, str]]:
    """(question, the chunk that answers it as source:key-pattern) built from the seed's ids."""
    last_week = today - dt.timedelta(days=today.weekday() + 7)
    week = last_week.isocalendar().week
    spotify, instagram, youtube, soundcloud = (f"00000000-0000-4000-d000-00000000000{i}" for i in (1, 2, 3, 4))
    return [
        (f"How did Luna Vale's Spotify followers change in week {week}?", f"metrics:{spotify}:followers:{last_week}"),
        (f"YouTube subscribers of The Quiet Engines in week {week}", f"metrics:{youtube}:subscribers:{last_week}"),
        (f"Instagram reach for Luna Vale during week {week}", f"metrics:{instagram}:reach:{last_week}"),
        (f"SoundCloud plays for DJ Koa in week {week}", f"metrics:{soundcloud}:plays_total:{last_week}"),
        ("What is the budget of the Moonrise single launch?", "campaign:"),
        ("Which campaign used pre-roll ads around the tour announcement video?", "campaign:"),
        ("Did the video channel's audience jump unusually in the last few days?", "anomaly:"),
        ("Was there an unusual surge of people following the DJ?", "anomaly:"),
        ("How popular is Luna Vale on Spotify lately?", f"metrics:{spotify}:popularity:"),
        ("Which influencer marketing push happened for the new single?", "campaign:"),
        ("Which act saw a sudden wave of new fans?", "anomaly:"),
        ("Tell me about the TikTok creator strategy", "campaign:"),
    ]


async def recall_at_5(conn: psycopg.AsyncConnection[Any], embedder: Any, mode: str) -> float:
    today = dt.date.today()
    hits = 0
    questions = labelled_questions(today)
    for question, expected in questions:
        rows = await retrieve(conn, ORG, question, None, embedder, mode=mode, k=5)
        keys = [await key_of(conn, r["id"]) for r in rows]
        hits += any(k.startswith(expected) for k in keys)
    return hits / len(questions)


async def test_hybrid_recall_at_5_is_at_least_each_signal_alone(seeded: psycopg.AsyncConnection[Any],
                                                                embedder: Any) -> None:
    await as_user(seeded, VIEWER)
    recalls = {mode: await recall_at_5(seeded, embedder, mode) for mode in ("fulltext", "vector", "hybrid")}
    print(f"\nrecall@5 on the labelled set: {recalls}")
    assert recalls["hybrid"] >= recalls["fulltext"]
    assert recalls["hybrid"] >= recalls["vector"]
    assert recalls["hybrid"] >= 11 / 12  # 0.92 before the full-text side ranked a bounded set (issue 20)


async def test_retrieval_never_crosses_organizations(seeded: psycopg.AsyncConnection[Any], embedder: Any) -> None:
    outsider = uuid.uuid4()
    await seeded.execute(INSERT_USER_SQL, gotrue_user(outsider, "x@example.test"))
    await as_user(seeded, str(outsider))
    with pytest.raises(psycopg.errors.InsufficientPrivilege):
        await retrieve(seeded, ORG, "Spotify followers", None, embedder)


async def test_another_orgs_identical_chunks_never_reach_this_org(seeded: psycopg.AsyncConnection[Any],
                                                                  embedder: Any) -> None:
    """Org B holds a copy of every chunk of the seed's org (same text, same embedding), so each of them
    ties with B's copy as the closest match in the corpus. In every mode the seed org's viewer gets
    only its own chunks and B's member only B's; B's member naming the seed org is refused."""
    other_org, other_member = uuid.uuid4(), uuid.uuid4()
    await seeded.execute(INSERT_USER_SQL, gotrue_user(other_member, "b-member@example.test"))
    await seeded.execute("insert into public.organizations (id, name, slug, created_by) "
                         "values (%s, 'Other Label', 'other-label', %s)", (other_org, other_member))
    await seeded.execute("insert into public.memberships (org_id, user_id, role) values (%s, %s, 'viewer')",
                         (other_org, other_member))
    await seeded.execute(
        "insert into public.documents (org_id, source, source_key, period_start, period_end, content, embedding, "
        "embedding_model) select %s, source, source_key, period_start, period_end, content, embedding, "
        "embedding_model from public.documents where org_id = %s", (other_org, ORG))
    owners = {r["id"]: r["org_id"] for r in await (await seeded.execute(
        "select id, org_id from public.documents where org_id in (%s, %s)", (ORG, other_org))).fetchall()}
    assert sum(1 for o in owners.values() if o == other_org) == sum(1 for o in owners.values() if o == ORG) > 0

    question = "What is the budget of the Moonrise single launch?"
    for user, org in ((VIEWER, ORG), (str(other_member), other_org)):
        await as_user(seeded, user)
        for mode in ("hybrid", "vector", "fulltext"):
            rows = await retrieve(seeded, org, question, None, embedder, mode=mode, k=10)
            assert rows, (user, mode)
            assert {owners[r["id"]] for r in rows} == {org}, (user, mode)
    # Still B's member: asking about the seed org is refused outright.
    with pytest.raises(psycopg.errors.InsufficientPrivilege):
        await retrieve(seeded, ORG, question, None, embedder)


async def test_full_text_alone_answers_without_embeddings(seeded: psycopg.AsyncConnection[Any]) -> None:
    await as_user(seeded, VIEWER)
    rows = await retrieve(seeded, ORG, "Moonrise single launch budget", None, None)
    assert rows and rows[0]["source"] == "campaign" and rows[0]["vector_rank"] is None


async def test_extractive_answer_is_grounded_labelled_and_stored(seeded: psycopg.AsyncConnection[Any],
                                                                embedder: Any) -> None:
    await as_user(seeded, ANALYST)
    answer = await answer_question(seeded, ORG, "What is the budget of the Moonrise single launch?",
                                   embedder=embedder)
    assert answer.mode == "extractive"
    assert "no language model is configured" in answer.text
    assert any("12000" in c["content"] for c in answer.citations)
    stored = await (await seeded.execute("select kind::text, question, answer_mode, citations from public.insights "
                                         "where id = %s", (answer.insight_id,))).fetchone()
    assert stored["kind"] == "answer" and stored["answer_mode"] == "extractive"
    assert stored["citations"] == [c["id"] for c in answer.citations]


@respx.mock
async def test_llm_answer_keeps_only_real_citations(seeded: psycopg.AsyncConnection[Any], embedder: Any) -> None:
    await as_user(seeded, ANALYST)
    facts = await retrieve(seeded, ORG, "Moonrise single launch budget", None, embedder)
    real = facts[0]["id"]
    route = respx.post("http://llm.test/v1/chat/completions").mock(return_value=httpx.Response(200, json={
        "id": "chatcmpl-1", "object": "chat.completion", "created": 1, "model": "small",
        "choices": [{"index": 0, "finish_reason": "stop",
                     "message": {"role": "assistant", "content": f"The budget is 12,000 USD [{real}] [999999]."}}],
        "usage": {"prompt_tokens": 10, "completion_tokens": 10, "total_tokens": 20},
    }))
    llm = ChatModel("http://llm.test", "small", api_key="sk-test")
    answer = await answer_question(seeded, ORG, "Moonrise single launch budget", embedder=embedder, llm=llm)
    assert answer.mode == "llm" and [c["id"] for c in answer.citations] == [real]
    sent = json.loads(route.calls.last.request.content)
    assert sent["model"] == "small" and f"[{real}]" in sent["messages"][1]["content"]
    assert route.calls.last.request.headers["Authorization"] == "Bearer sk-test"


@respx.mock
async def test_llm_failure_falls_back_to_extractive(seeded: psycopg.AsyncConnection[Any], embedder: Any) -> None:
    await as_user(seeded, ANALYST)
    respx.post("http://llm.test/v1/chat/completions").mock(return_value=httpx.Response(503))
    answer = await answer_question(seeded, ORG, "Moonrise budget", embedder=embedder,
                                   llm=ChatModel("http://llm.test", "small"))
    assert answer.mode == "extractive" and answer.note and "503" in answer.note


async def test_viewer_cannot_store_answers(seeded: psycopg.AsyncConnection[Any]) -> None:
    await as_user(seeded, VIEWER)
    with pytest.raises(psycopg.errors.InsufficientPrivilege):
        await answer_question(seeded, ORG, "Moonrise budget")


async def test_vector_mode_returns_the_exact_nearest_chunks_in_order(seeded: psycopg.AsyncConnection[Any],
                                                                     embedder: Any) -> None:
    await as_user(seeded, VIEWER)
    question = "How popular is Luna Vale on Spotify lately?"
    rows = await retrieve(seeded, ORG, question, None, embedder, mode="vector", k=5)
    query = vector_literal((await embedder.embed([question]))[0])
    exact = await (await seeded.execute(
        "select id from public.documents where org_id = %s and embedding is not null "
        "order by embedding operator(extensions.<=>) %s::extensions.vector, id limit 5", (ORG, query))).fetchall()
    assert [r["id"] for r in rows] == [r["id"] for r in exact]
    assert [r["vector_rank"] for r in rows] == [1, 2, 3, 4, 5]
    assert all(r["fulltext_rank"] is None for r in rows)
    assert [r["score"] for r in rows] == pytest.approx([1 / (60 + rank) for rank in range(1, 6)])


# ---------------------------------------------------------------------------------------------
# bounded full-text ranking (issue 20): long questions, large organizations
# ---------------------------------------------------------------------------------------------

LONG_QUESTION = ("What is the budget of the Moonrise single launch? " + " ".join(
    f"Also consider detail{i} of the plan, its context{i}, and aspect{i}." for i in range(60)))[:2000]


async def test_a_long_question_is_searched_on_its_first_words(seeded: psycopg.AsyncConnection[Any],
                                                              embedder: Any) -> None:
    """A question within the 2000 characters the ask path accepts but beyond search_documents' 64 search terms is
    refused by search_documents as sent, and answered by retrieve() on its first 32 distinct words."""
    assert len(LONG_QUESTION) == 2000
    await as_user(seeded, ANALYST)
    with pytest.raises(psycopg.errors.InvalidParameterValue, match="at most 64 search terms"):
        async with seeded.transaction():
            await seeded.execute("select * from public.search_documents(%s, %s)", (ORG, LONG_QUESTION))
    words = search_words(LONG_QUESTION)
    assert words.split()[:4] == ["budget", "Moonrise", "single", "launch"] and len(words.split()) == 32
    for mode in ("hybrid", "fulltext"):
        rows = await retrieve(seeded, ORG, LONG_QUESTION, None, embedder, mode=mode, k=5)
        assert rows and rows[0]["source"] == "campaign" and "12000" in rows[0]["content"], mode
    answer = await answer_question(seeded, ORG, LONG_QUESTION, embedder=embedder)
    assert any("12000" in c["content"] for c in answer.citations)


def test_search_words_stay_within_the_search_term_bound(db: TestDB) -> None:
    """Whatever the question's shape (hyphens, negations, quotes, URLs, numbers, repeats), its search words hold at
    most 32 search terms for Postgres; a short question's words are its words."""
    shapes = [
        " ".join(f"-a{i}-b{i}-c{i}" for i in range(200)),
        " ".join(f'"x{i} y{i}" or -z{i}' for i in range(200)),
        " ".join(f"https://example{i}.com/p/{i}?q={i} user{i}@mail{i}.test 3.{i} 1,00{i}" for i in range(100)),
        "the " * 400 + "followers",
        "followers " * 300,
        " ".join(f"état{i}-über{i} naïve{i}" for i in range(150)),
    ]
    for question in shapes:
        words = search_words(question[:2000])
        nodes = db.value("select numnode(websearch_to_tsquery('english', %s))", (words,))
        assert nodes <= 2 * MAX_SEARCH_WORDS - 1, question[:40]
    assert search_words("How did the followers, and the followers of Luna-Vale change in week 47?") == (
        "followers Luna Vale change week 47")


def test_full_text_of_a_large_organization_ranks_a_bounded_set_and_keeps_specific_words(db: TestDB) -> None:
    """An organization with more chunks than the full-text side walks (4 x 1,000 for a question of up to 16 terms):
    its newest matches are ranked, and so are, wherever they sit in time, the matches of a word rare among them and
    the chunks holding every one of the question's common words."""
    world = build_world(db)
    org, artist = world.ids["org_a"], world.ids["artist_a"]
    # 6,000 chunks, one a day back from 2026-11-23. A tenth name Instagram, a tenth shares, a tenth "doubled", never
    # two of them together; every one names Spotify and followers or streams.
    db.execute(
        "insert into public.documents (org_id, artist_id, source, source_key, period_start, period_end, content) "
        "select %s, %s, 'metrics', 'bulk:' || i, date '2026-11-23' - i, date '2026-11-23' - i, "
        "format('%%s %%s for Artist A %%s %%s%%%% in week %%s (Spotify)', "
        "case when i %% 10 = 0 then 'Instagram' else 'Spotify' end, "
        "case when i %% 10 = 1 then 'shares' when i %% 2 = 0 then 'followers' else 'streams' end, "
        "case when i %% 10 = 2 then 'doubled' else 'rose' end, i %% 50, 1 + i %% 52) "
        "from generate_series(1, 6000) as i", (org, artist))
    old = db.value(
        "insert into public.documents (org_id, artist_id, source, source_key, period_start, period_end, content) "
        "values (%s, %s, 'campaign', 'moonrise', '2010-01-01', '2010-01-31', "
        "'Campaign Moonrise for Artist A: Spotify followers push') returning id", (org, artist))
    together = db.value(
        "insert into public.documents (org_id, artist_id, source, source_key, period_start, period_end, content) "
        "values (%s, %s, 'metrics', 'together', '2010-02-01', '2010-02-07', "
        "'Instagram shares for Artist A doubled 100%% in week 5') returning id", (org, artist))
    with db.as_user(world.users["analyst"]):
        def top(question: str) -> list[int]:
            return [r["id"] for r in db.execute(
                "select id from public.search_documents(%s, %s, null, null, 5, 'fulltext')", (org, question))]

        # Spotify and followers are in every recent chunk, Moonrise in one chunk of 2010.
        assert top("Spotify followers of the Moonrise campaign")[0] == old
        # Instagram, shares and doubled are each in a tenth of the recent chunks; together only in one of 2010.
        assert top("Did Instagram shares double?")[0] == together
        # Common words only: the newest of the equally ranked chunks come first.
        newest = [r["id"] for r in db.execute(
            "select id from public.documents where org_id = %s and content like '%%followers%%' "
            "order by period_end desc, id desc limit 5", (org,))]
        assert top("followers") == newest
        # The private steps: the candidates' membership check; the GIN-only read is not the API roles' to call.
        assert db.value("select cardinality(private.fulltext_candidates(%s, null, 'followers', 10))", (org,)) == 10
        assert db.value("select has_function_privilege('authenticated', 'private.fulltext_matches(uuid, uuid, "
                        "tsquery, tsquery, integer, integer)', 'execute')") is False
    with pytest.raises(psycopg.errors.InsufficientPrivilege), db.as_user(world.users["outsider"]):
        db.execute("select private.fulltext_candidates(%s, null, 'followers', 10)", (org,))
