-- Private step record_answer: stores an answer of POST /functions/v1/insights/ask as an insight (kind answer).
-- The only way a user's request writes public.insights (INSERT is not granted to authenticated): PostgREST does not
-- expose the private schema, so only the handler reaches it, after its per-user and per-organization rate limits.
-- Every input is bounded and every id checked in the caller's organization (same answer for an unknown id and
-- another organization's).
create or replace function private.record_answer(
    org_id uuid,
    artist_id uuid,
    question text,
    body text,
    citations jsonb,
    answer_mode text,
    evidence jsonb
)
returns uuid
language plpgsql volatile security definer set search_path = ''
as $$
declare
    caller uuid := private.caller_id();
    clean_question text := btrim(record_answer.question);
    cited bigint[];
    created uuid;
begin
    if record_answer.org_id is null then
        raise exception 'org_id is required' using errcode = '22023';
    end if;
    if not private.has_permission(record_answer.org_id, 'insights.ask') then
        raise exception 'asking needs the insights.ask permission (analyst or above) in this organization'
        using errcode = '42501';
    end if;
    if clean_question is null or char_length(clean_question) not between 3 and 2000 then
        raise exception 'question must be 3-2000 characters' using errcode = '22023';
    end if;
    if record_answer.body is null or char_length(record_answer.body) not between 1 and 24000 then
        raise exception 'body must be 1-24000 characters' using errcode = '22023';
    end if;
    if record_answer.answer_mode is null or record_answer.answer_mode not in ('llm', 'extractive') then
        raise exception 'answer_mode must be llm or extractive' using errcode = '22023';
    end if;
    if record_answer.citations is null or jsonb_typeof(record_answer.citations) <> 'array'
        or jsonb_array_length(record_answer.citations) > 50
        or exists (
            select 1 from jsonb_array_elements(record_answer.citations) as c (v)
            where jsonb_typeof(c.v) <> 'number' or c.v::text !~ '^[0-9]{1,18}$'
        ) then
        raise exception 'citations must be a JSON array of at most 50 document ids' using errcode = '22023';
    end if;
    if record_answer.evidence is null or jsonb_typeof(record_answer.evidence) <> 'object'
        or octet_length(record_answer.evidence::text) > 16384 then
        raise exception 'evidence must be a JSON object of at most 16384 bytes' using errcode = '22023';
    end if;
    if record_answer.artist_id is not null and not exists (
        select 1 from public.artists as a
        where a.org_id = record_answer.org_id and a.id = record_answer.artist_id
    ) then
        raise exception 'artist not found in this organization' using errcode = 'P0002';
    end if;
    cited := array(select distinct (c.v::text)::bigint from jsonb_array_elements(record_answer.citations) as c (v));
    if (
        select count(*) from public.documents as d
        where d.org_id = record_answer.org_id and d.id = any(cited)
    ) <> cardinality(cited) then
        raise exception 'citations must be documents of this organization' using errcode = '22023';
    end if;
    insert into public.insights (
        org_id, artist_id, kind, title, body, question, citations, answer_mode, evidence, created_by
    )
    values (
        record_answer.org_id,
        record_answer.artist_id,
        'answer',
        case when char_length(clean_question) <= 120 then clean_question else left(clean_question, 117) || '...' end,
        record_answer.body,
        clean_question,
        record_answer.citations,
        record_answer.answer_mode,
        record_answer.evidence,
        caller
    )
    returning id into created;
    return created;
end
$$;
comment on function private.record_answer(uuid, uuid, text, text, jsonb, text, jsonb) is
'Stores an /insights/ask answer as an insight for the caller (insights.ask): question 3-2000 characters, body '
'1-24000, at most 50 citations, all documents of the organization, the artist (if any) one of the organization, '
'evidence at most 16 KiB. Returns the insight id. Errors: 42501, 22023, P0002 (artist not found).';
revoke all on function private.record_answer(uuid, uuid, text, text, jsonb, text, jsonb) from public, anon;
grant execute on function private.record_answer(uuid, uuid, text, text, jsonb, text, jsonb)
to authenticated, service_role;
