-- Private steps of search_documents: the full-text candidates of a question in one organization, best first,
-- ranked among a bounded set of chunks whatever the organization's size (issue 20): at most 3 x pool_size chunks
-- (pool_size = 1,000 up to 16 search terms, 16,000 / terms beyond), read through documents_org_recency_idx and
-- documents_org_tsv_idx (migration 20261130001500_hybrid_retrieval).
--
-- private.fulltext_matches: up to `keep` chunks of an organization matching `match`, best first by `rank_by`,
-- among at most `scan_limit` of them, read through the GIN index documents_org_tsv_idx only. Index scans are off
-- in it: with LIMIT, the planner otherwise prefers walking documents_org_recency_idx and, when it overestimates how
-- many chunks match (each lexeme its statistics do not list counts as fairly common), walks the whole organization
-- (600 ms for 61 rare words in the largest benchmark tenant, against 1 ms through the GIN index). Called only by
-- private.fulltext_candidates (as its owner); no API role may execute it.
create or replace function private.fulltext_matches(
    org_id uuid,
    artist_id uuid,
    match tsquery,
    rank_by tsquery,
    scan_limit integer,
    keep integer
)
returns table (id bigint, content_tsv tsvector)
language plpgsql stable security invoker set search_path = ''
set plan_cache_mode = force_custom_plan
set enable_indexscan = off
set enable_indexonlyscan = off
set enable_seqscan = off
as $$
#variable_conflict use_column
begin
    return query
    select m.id, m.content_tsv
    from (
        select d.id, d.content_tsv
        from public.documents as d
        where
            d.org_id = fulltext_matches.org_id
            and (fulltext_matches.artist_id is null or d.artist_id = fulltext_matches.artist_id)
            and d.content_tsv @@ match
        limit scan_limit
    ) as m
    where m.content_tsv @@ rank_by
    order by ts_rank(m.content_tsv, rank_by) desc, m.id desc
    limit keep;
end
$$;
comment on function private.fulltext_matches(uuid, uuid, tsquery, tsquery, integer, integer) is
'fulltext_candidates'' GIN-only read: up to keep chunks of the organization matching match (and rank_by), best '
'first by ts_rank(rank_by), among at most scan_limit matches read in physical order. Not callable by API roles.';
revoke all on function private.fulltext_matches(uuid, uuid, tsquery, tsquery, integer, integer)
from public, anon, authenticated;

-- private.fulltext_candidates: security definer for one reason: under row-level security Postgres never uses an
-- index for `@@` (ts_match_vq is not leakproof, so it may not run before the policy's qual), so as the caller
-- every full-text search read its organization's chunks one by one (150 ms for a question matching nothing in
-- the largest benchmark tenant). It checks what the policy would (the caller is a member of the organization)
-- and returns chunk ids only: search_documents, security invoker, reads their rows under RLS.
create or replace function private.fulltext_candidates(
    org_id uuid,
    artist_id uuid,
    query text,
    candidates integer
)
returns bigint[]
language plpgsql stable security definer set search_path = ''
-- Planned per call, for this organization and these words.
set plan_cache_mode = force_custom_plan
as $$
#variable_conflict use_column
declare
    words tsquery;
    terms text [];
    pool_size integer;
    walked integer;
    matched integer;
    pool_ids bigint [];
    pool_tsv tsvector [];
    rare tsquery;
    common tsquery;
begin
    perform private.caller_id();
    if fulltext_candidates.org_id is null then
        raise exception 'org_id is required' using errcode = '22023';
    end if;
    if query is null or btrim(query) = '' or char_length(query) > 2000 then
        raise exception 'query must be 1-2000 characters' using errcode = '22023';
    end if;
    if numnode(websearch_to_tsquery('english', query)) > 127 then
        raise exception 'query may contain at most 64 search terms (words other than stop words)'
        using errcode = '22023';
    end if;
    if candidates is null or candidates not between 1 and 200 then
        raise exception 'candidates must be between 1 and 200' using errcode = '22023';
    end if;
    if fulltext_candidates.org_id not in (select private.my_org_ids())
        and auth.role() is distinct from 'service_role' then
        raise exception 'you are not a member of this organization' using errcode = '42501';
    end if;

    -- Any of the question's words may match (websearch syntax ANDs them; questions rarely repeat a chunk's wording).
    words := replace(websearch_to_tsquery('english', query)::text, ' & ', ' | ')::tsquery;
    -- Its distinct terms, and how many chunks are ranked: matching and ranking cost about terms x chunks, so the
    -- pool shrinks as the terms grow (1,000 chunks up to 16 terms, 250 at the 64-term bound).
    terms := array(select distinct t.lexeme from unnest(to_tsvector('english', query)) as t);
    if cardinality(terms) = 0 then
        return array[]::bigint [];  -- only stop words: nothing to match
    end if;
    pool_size := least(1000, 16000 / cardinality(terms));

    -- 1. The organization's newest chunks, 4 x pool_size of them: an index-only walk of documents_org_recency_idx
    --    (organization, newest first, the tsvector in the index). The pool: their newest pool_size matches.
    select
        coalesce((array_agg(w.id order by w.period_end desc, w.id desc) filter (where w.matched))[1:pool_size], '{}'),
        coalesce(
            (array_agg(w.content_tsv order by w.period_end desc, w.id desc) filter (where w.matched))[1:pool_size],
            '{}'
        ),
        count(*) filter (where w.matched),
        count(*)
    into pool_ids, pool_tsv, matched, walked
    from (
        select
            d.id,
            d.period_end,
            d.content_tsv,
            d.content_tsv @@ words as matched
        from public.documents as d
        where
            d.org_id = fulltext_candidates.org_id
            and (fulltext_candidates.artist_id is null or d.artist_id = fulltext_candidates.artist_id)
        order by d.period_end desc, d.id desc
        limit pool_size * 4
    ) as w;

    -- 2. Unless that was every chunk of the organization (then the pool holds all its matches), two bounded reads
    --    through the GIN index add what recency misses, each at most pool_size chunks, best first, among at most
    --    4 x pool_size read: (a) the matches of the terms rare among the walked chunks (in at most 1% of them,
    --    estimated from the pool's newest 200): the question's specific words (an artist, a campaign, an older
    --    week); (b) when three terms or more are common, the chunks holding all of them (the 4 least common),
    --    wherever they are in time.
    if walked = pool_size * 4 then
        select
            string_agg(q.term_query::text, ' | ') filter (where q.rare)::tsquery,
            string_agg(q.term_query::text, ' & ') filter (where not q.rare and q.specificity <= 4)::tsquery
        into rare, common
        from (
            select
                r.term_query,
                r.rare,
                row_number() over (partition by r.rare order by r.chunks, r.term) as specificity
            from (
                select
                    t.term,
                    ('''' || replace(replace(t.term, '\', '\\'), '''', '''''') || '''')::tsquery as term_query,
                    coalesce(c.chunks, 0) as chunks,
                    coalesce(c.chunks, 0)::float8 * matched <= 0.01 * walked * least(200, cardinality(pool_tsv)) as rare
                from unnest(terms) as t (term)
                left join (
                    -- how many of the pool's newest 200 chunks hold each term
                    select l.lexeme, count(*) as chunks
                    from unnest(pool_tsv[1:200]) as v (tsv)
                    cross join lateral unnest(v.tsv) as l
                    inner join unnest(terms) as k (term) on l.lexeme = k.term
                    group by l.lexeme
                ) as c on t.term = c.lexeme
            ) as r
        ) as q;
    end if;
    if rare is not null then
        select pool_ids || coalesce(array_agg(m.id), '{}'), pool_tsv || coalesce(array_agg(m.content_tsv), '{}')
        into pool_ids, pool_tsv
        from private.fulltext_matches(
            fulltext_candidates.org_id, fulltext_candidates.artist_id, rare, words, pool_size * 4, pool_size
        ) as m;
    end if;
    if numnode(common) >= 5 then
        select pool_ids || coalesce(array_agg(m.id), '{}'), pool_tsv || coalesce(array_agg(m.content_tsv), '{}')
        into pool_ids, pool_tsv
        from private.fulltext_matches(
            fulltext_candidates.org_id, fulltext_candidates.artist_id, common, words, pool_size * 4, pool_size
        ) as m;
    end if;

    -- 3. The pool ranked by ts_rank (term frequency: ts_rank_cd's cover density costs 10x more per chunk and
    --    ranked the labelled questions no better), ties newest first; a chunk found more than once counts once.
    return array(
        select p.id
        from unnest(pool_ids, pool_tsv) with ordinality as p (id, tsv, recency)
        group by p.id
        order by max(ts_rank(p.tsv, words)) desc, min(p.recency)
        limit candidates
    );
end
$$;
comment on function private.fulltext_candidates(uuid, uuid, text, integer) is
'search_documents'' full-text side: up to `candidates` chunk ids of the organization (optionally one artist) '
'matching any of the query''s words, best first, ranked among at most 3,000 chunks (the newest matches, the '
'matches of its words rare among them, the chunks holding all its common words). Same bounds and membership '
'check as search_documents. Errors: 22023 bad arguments, 42501 not signed in or not a member.';
revoke all on function private.fulltext_candidates(uuid, uuid, text, integer) from public, anon;
grant execute on function private.fulltext_candidates(uuid, uuid, text, integer) to authenticated, service_role;
