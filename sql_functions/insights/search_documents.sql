-- RPC search_documents: hybrid retrieval over an organization's chunks, run as the caller (RLS applies).
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
as $$
#variable_conflict use_column
declare
    candidates integer;
    words tsquery;
    fulltext_part text := $fulltext$
    fulltext as (
        select
            d.id,
            d.artist_id,
            d.source,
            d.period_start,
            d.period_end,
            d.content,
            row_number() over (order by ts_rank_cd(d.content_tsv, $3) desc, d.id)::integer as rank
        from public.documents as d
        where
            d.org_id = $1
            and ($2 is null or d.artist_id = $2)
            and d.content_tsv @@ $3
        order by rank
        limit $5
    )
    $fulltext$;
    nearest_part text := $nearest$
    nearest as materialized (
        select
            d.id,
            d.artist_id,
            d.source,
            d.period_start,
            d.period_end,
            d.content,
            d.embedding operator(extensions.<=>) $4 as distance
        from public.documents as d
        where
            d.org_id = $1
            and ($2 is null or d.artist_id = $2)
            and d.embedding is not null
        order by d.embedding operator(extensions.<=>) $4
        limit $5
    )
    $nearest$;
begin
    if query is null or btrim(query) = '' then
        raise exception 'query is required' using errcode = '22023';
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
    candidates := greatest(match_count * 4, 40);
    -- Any of the question's words may match (websearch syntax ANDs them; questions rarely repeat a chunk's wording).
    words := replace(websearch_to_tsquery('english', query)::text, ' & ', ' | ')::tsquery;
    -- Dynamic SQL on purpose. A one-shot plan sees the actual organization, so the planner picks the org_id
    -- index plus an exact sort for small organizations and the HNSW index (iterative scan) for large ones,
    -- where plpgsql's cached generic plan would use one strategy for all; and a signal that is not asked
    -- for (mode, or no embedding) is left out of the statement instead of being planned and skipped.
    if mode = 'vector' then
        fulltext_part := $empty$
    fulltext as (
        select
            null::bigint as id,
            null::uuid as artist_id,
            null::text as source,
            null::date as period_start,
            null::date as period_end,
            null::text as content,
            null::integer as rank
        where false
    )
    $empty$;
    end if;
    if mode = 'fulltext' or query_embedding is null then
        nearest_part := $empty$
    nearest as (
        select
            null::bigint as id,
            null::uuid as artist_id,
            null::text as source,
            null::date as period_start,
            null::date as period_end,
            null::text as content,
            null::double precision as distance
        where false
    )
    $empty$;
    end if;
    return query execute format($query$
    with %s,

    %s,

    vector_ranked as (
        select n.*, row_number() over (order by n.distance, n.id)::integer as rank
        from nearest as n
    ),

    -- Each side carries the chunk's columns, so the fused rows need no second visit to documents.
    fused as (
        select
            coalesce(f.id, v.id) as id,
            coalesce(f.artist_id, v.artist_id) as artist_id,
            coalesce(f.source, v.source) as source,
            coalesce(f.period_start, v.period_start) as period_start,
            coalesce(f.period_end, v.period_end) as period_end,
            coalesce(f.content, v.content) as content,
            f.rank as fulltext_rank,
            v.rank as vector_rank,
            coalesce(1.0 / (60 + f.rank), 0) + coalesce(1.0 / (60 + v.rank), 0) as score
        from fulltext as f
        full outer join vector_ranked as v on f.id = v.id
    )

    select x.id, x.artist_id, x.source, x.period_start, x.period_end, x.content, x.fulltext_rank, x.vector_rank,
        x.score::double precision
    from fused as x
    order by x.score desc, x.id
    limit $6
    $query$, fulltext_part, nearest_part)
    using search_documents.org_id, search_documents.artist_id, words, query_embedding, candidates,
        match_count;
end
$$;
-- pgvector 0.8 iterative index scans: the HNSW scan goes on until enough rows pass the organization
-- filter, so tenant filtering does not starve results.
do $iterative$
begin
    alter function public.search_documents(uuid, text, extensions.vector, uuid, integer, text)
    set hnsw.iterative_scan = 'relaxed_order';
end
$iterative$;
comment on function public.search_documents(uuid, text, extensions.vector, uuid, integer, text) is
'Hybrid retrieval over an organization''s chunks: full-text rank and HNSW cosine similarity fused by reciprocal '
'rank fusion (k = 60), optionally for one artist; mode fulltext or vector isolates one signal. Without an '
'embedding, full text alone answers. Errors: 22023 bad arguments, 42501 not a member.';
revoke all on function public.search_documents(uuid, text, extensions.vector, uuid, integer, text) from public, anon;
grant execute on function public.search_documents(uuid, text, extensions.vector, uuid, integer, text)
to authenticated, service_role;
