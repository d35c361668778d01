-- RPC search_documents: hybrid retrieval over an organization's chunks, run as the caller (RLS applies). Its full-text
-- side is private.fulltext_candidates (fulltext_candidates.sql): chunk ids ranked among a bounded set of chunks.
-- Dropped first: a repeatable file may change the result columns, which CREATE OR REPLACE cannot.
drop function if exists public.search_documents(uuid, text, extensions.vector, uuid, integer, text);
create or replace function public.search_documents(
    org_id uuid,
    query text,
    query_embedding extensions.vector(384) default null,
    artist_id uuid default null,
    match_count integer default 10,
    mode text default 'hybrid'
)
returns table (
    id bigint,
    chunk_artist_id uuid,
    source text,
    period_start date,
    period_end date,
    content text,
    fulltext_rank integer,
    vector_rank integer,
    score double precision
)
language plpgsql stable security invoker
set search_path = ''
-- Every statement below is planned for this call's organization: the planner then reads a small
-- organization's chunks through the org_id index and sorts them exactly, and walks the HNSW graph
-- (iterative scan) for a large one. A cached generic plan would use one strategy for every tenant.
set plan_cache_mode = force_custom_plan
as $$
#variable_conflict use_column
declare
    candidates integer;
    fulltext_ids bigint [];
begin
    if auth.uid() is null then
        raise exception 'sign in first: this request carries no user (its token has no sub claim)'
        using errcode = '42501';
    end if;
    if search_documents.org_id is null then
        raise exception 'org_id is required' using errcode = '22023';
    end if;
    if query is null or btrim(query) = '' then
        raise exception 'query is required' using errcode = '22023';
    end if;
    -- Input bounds (matching and ranking cost the number of terms times the chunks ranked): the question's own
    -- bound in characters, and at most 64 search terms (the words left once stop words are dropped).
    if char_length(query) > 2000 then
        raise exception 'query may be at most 2000 characters' using errcode = '22023';
    end if;
    if numnode(websearch_to_tsquery('english', query)) > 127 then
        raise exception 'query may contain at most 64 search terms (words other than stop words)'
        using errcode = '22023';
    end if;
    if query_embedding is not null and extensions.vector_dims(query_embedding) <> 384 then
        raise exception 'query_embedding must have 384 dimensions' using errcode = '22023';
    end if;
    if match_count is null or match_count not between 1 and 50 then
        raise exception 'match_count must be between 1 and 50' using errcode = '22023';
    end if;
    if mode is null or mode not in ('hybrid', 'fulltext', 'vector') then
        raise exception 'mode must be hybrid, fulltext or vector' using errcode = '22023';
    end if;
    if mode = 'vector' and query_embedding is null then
        raise exception 'mode vector needs query_embedding' using errcode = '22023';
    end if;
    if search_documents.org_id not in (select private.my_org_ids()) and auth.role() is distinct from 'service_role' then
        raise exception 'you are not a member of this organization' using errcode = '42501';
    end if;

    -- One statement per mode, on purpose: a single statement with the unused signal switched off by a
    -- constant-false condition is still planned whole, and planning the full-text side against the
    -- 1M-chunk benchmark corpus cost ~20 ms a call (measured; the scan itself never ran).
    -- Vector only: the nearest chunks in distance order (a strict-order scan returns them sorted).
    if mode = 'vector' then
        return query
        with nearest as materialized (
            select
                d.id,
                d.artist_id,
                d.source,
                d.period_start,
                d.period_end,
                d.content,
                d.embedding operator(extensions.<=>) query_embedding as distance
            from public.documents as d
            where
                d.org_id = search_documents.org_id
                and (search_documents.artist_id is null or d.artist_id = search_documents.artist_id)
                and d.embedding is not null
            order by d.embedding operator(extensions.<=>) query_embedding
            limit match_count
        ),

        ranked as (
            select n.*, row_number() over (order by n.distance, n.id)::integer as rank
            from nearest as n
        )

        select
            r.id,
            r.artist_id,
            r.source,
            r.period_start,
            r.period_end,
            r.content,
            null::integer,
            r.rank,
            (1.0 / (60 + r.rank))::double precision
        from ranked as r
        order by r.rank
        limit match_count;
        return;
    end if;

    -- Full-text candidates, ranked among a bounded set of chunks (private.fulltext_candidates: the
    -- organization's newest matches plus those of the question's rare words; security definer so that the
    -- indexes serve `@@`, which RLS keeps out of index scans).
    candidates := case
        when mode = 'fulltext' or query_embedding is null then match_count
        else greatest(match_count * 4, 40)
    end;
    fulltext_ids := private.fulltext_candidates(
        search_documents.org_id, search_documents.artist_id, query, candidates
    );

    -- Full text only (asked for, or no embedding to search with).
    if mode = 'fulltext' or query_embedding is null then
        return query
        select
            d.id,
            d.artist_id,
            d.source,
            d.period_start,
            d.period_end,
            d.content,
            f.rank::integer,
            null::integer,
            (1.0 / (60 + f.rank))::double precision
        from unnest(fulltext_ids) with ordinality as f (id, rank)
        inner join public.documents as d on f.id = d.id
        order by f.rank
        limit match_count;
        return;
    end if;

    -- Hybrid: each signal's best candidates, fused by reciprocal rank (k = 60).
    return query
    with nearest as materialized (
        select
            d.id,
            d.embedding operator(extensions.<=>) query_embedding as distance
        from public.documents as d
        where
            d.org_id = search_documents.org_id
            and (search_documents.artist_id is null or d.artist_id = search_documents.artist_id)
            and d.embedding is not null
        order by d.embedding operator(extensions.<=>) query_embedding
        limit candidates
    ),

    vector_ranked as (
        select
            n.id,
            row_number() over (order by n.distance, n.id)::integer as rank
        from nearest as n
    ),

    fused as (
        select
            coalesce(f.id, v.id) as id,
            f.rank::integer as fulltext_rank,
            v.rank as vector_rank,
            coalesce(1.0 / (60 + f.rank), 0) + coalesce(1.0 / (60 + v.rank), 0) as score
        from unnest(fulltext_ids) with ordinality as f (id, rank)
        full outer join vector_ranked as v on f.id = v.id
        order by score desc, id
        limit match_count
    )

    -- Only the answer's rows are read from documents for their columns.
    select
        d.id,
        d.artist_id,
        d.source,
        d.period_start,
        d.period_end,
        d.content,
        x.fulltext_rank,
        x.vector_rank,
        x.score::double precision
    from fused as x
    inner join public.documents as d on x.id = d.id
    order by x.score desc, x.id;
end
$$;
-- pgvector 0.8 iterative index scans: the HNSW scan goes on until enough rows pass the organization
-- filter, so tenant filtering does not starve results. strict_order keeps the index's output sorted by
-- distance. ef_search = 400 (default 40) is the beam of the graph walk: with a narrow beam, a query whose
-- neighbours sit in a cluster the graph's upper layers do not route to settles in an unrelated region and
-- returns none of them (0/10). Measured over 900 queries on the 1M-chunk benchmark corpus: 19 such
-- queries at 100, 5 at 200, none at 300 or 400 (bench/README.md, retrieval: recall per tenant size).
do $iterative$
begin
    alter function public.search_documents(uuid, text, extensions.vector, uuid, integer, text)
    set hnsw.iterative_scan = 'strict_order' set hnsw.ef_search = 400;
end
$iterative$;
comment on function public.search_documents(uuid, text, extensions.vector, uuid, integer, text) is
'Hybrid retrieval over an organization''s chunks: full-text rank (ts_rank, among at most 3,000 chunks: the newest '
'matches and those of the query''s rare words) and HNSW cosine similarity fused by reciprocal rank fusion '
'(k = 60), optionally for one artist; mode fulltext or vector isolates one signal. Without an embedding, full '
'text alone answers. Bounds: query at most 2000 characters and 64 search terms, a 384-d embedding, match_count '
'1-50. Errors: 22023 bad arguments, 42501 not a member.';
revoke all on function public.search_documents(uuid, text, extensions.vector, uuid, integer, text) from public, anon;
grant execute on function public.search_documents(uuid, text, extensions.vector, uuid, integer, text)
to authenticated, service_role;
