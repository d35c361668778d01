-- =============================================================================================
-- Migration: insights
--   * public.insights: what the platform tells a team — anomalies found in SQL after each sync
--     (kind anomaly, deduplicated by dedupe_key) and answers to questions (kind answer, with
--     citations to document chunks). Published to Realtime.
--   * public.documents: short factual text chunks per artist and period, built by jobs from
--     metrics, anomalies and campaign notes, with a full-text vector and a 384-d embedding
--     (HNSW, cosine). The model name is stored per row; a change of model re-embeds.
--   Both carry org_id and are readable by the organization's members only.
-- =============================================================================================

create type public.insight_kind as enum ('anomaly', 'answer');
comment on type public.insight_kind is 'anomaly: detected in the metrics; answer: a reply to a member''s question.';

create table public.insights (
    id uuid primary key default extensions.gen_random_uuid(),
    org_id uuid not null references public.organizations (id) on delete cascade,
    artist_id uuid references public.artists (id) on delete cascade,
    account_id uuid references public.connected_accounts (id) on delete cascade,
    kind public.insight_kind not null,
    metric text,
    day date,
    title text not null check (char_length(title) between 1 and 300),
    body text not null,
    evidence jsonb not null default '{}' check (jsonb_typeof(evidence) = 'object'),
    question text check (char_length(question) <= 2000),
    citations jsonb not null default '[]' check (jsonb_typeof(citations) = 'array'),
    answer_mode text check (answer_mode in ('llm', 'extractive')),
    dedupe_key text,
    created_by uuid default auth.uid() references auth.users (id) on delete set null,
    created_at timestamptz not null default now(),
    unique (org_id, dedupe_key),
    check ((kind = 'answer') = (question is not null))
);
create index insights_org_id_idx on public.insights (org_id, created_at desc);
create index insights_artist_id_idx on public.insights (artist_id);
create index insights_account_id_idx on public.insights (account_id);
comment on table public.insights is 'Anomalies and answers for an organization (published to Realtime).';
comment on column public.insights.id is 'Insight id.';
comment on column public.insights.org_id is 'Owning organization.';
comment on column public.insights.artist_id is 'Artist concerned, if any.';
comment on column public.insights.account_id is 'Connected account concerned (anomalies).';
comment on column public.insights.kind is 'anomaly or answer.';
comment on column public.insights.metric is 'Metric concerned (anomalies).';
comment on column public.insights.day is 'Day of the anomaly.';
comment on column public.insights.title is 'One-line summary, e.g. "Spotify followers +60% vs usual".';
comment on column public.insights.body is 'The explanation or the answer text.';
comment on column public.insights.evidence is 'The numbers behind it (value, baseline, z-score, percent change...).';
comment on column public.insights.question is 'The question asked (answers only).';
comment on column public.insights.citations is 'Document chunk ids the answer cites.';
comment on column public.insights.answer_mode is 'llm (generated) or extractive (retrieved facts, no LLM configured).';
comment on column public.insights.dedupe_key is
'Identity of the event (account:metric:day:direction) so it is reported once.';
comment on column public.insights.created_by is 'Who asked (answers); null for detected anomalies.';
comment on column public.insights.created_at is 'When it was created.';

create table public.documents (
    id bigint generated always as identity primary key,
    org_id uuid not null references public.organizations (id) on delete cascade,
    artist_id uuid references public.artists (id) on delete cascade,
    source text not null check (source in ('metrics', 'anomaly', 'campaign')),
    source_key text not null,
    period_start date,
    period_end date,
    content text not null check (char_length(content) between 1 and 4000),
    content_tsv tsvector generated always as (to_tsvector('english', content)) stored,
    embedding extensions.vector(384),
    embedding_model text,
    created_at timestamptz not null default now(),
    updated_at timestamptz not null default now(),
    unique (org_id, source, source_key)
);
create index documents_org_id_idx on public.documents (org_id, artist_id);
create index documents_tsv_idx on public.documents using gin (content_tsv);
create index documents_embedding_idx on public.documents
using hnsw (embedding extensions.vector_cosine_ops);
create index documents_unembedded_idx on public.documents (id) where embedding is null;
comment on table public.documents is 'Factual text chunks per artist and period for retrieval (full text + vector).';
comment on column public.documents.id is 'Chunk id (cited by answers).';
comment on column public.documents.org_id is 'Owning organization.';
comment on column public.documents.artist_id is 'Artist the chunk is about.';
comment on column public.documents.source is 'What it was built from: metrics, anomaly or campaign.';
comment on column public.documents.source_key is 'Stable identity within the source (rebuilding replaces the chunk).';
comment on column public.documents.period_start is 'First day the chunk covers.';
comment on column public.documents.period_end is 'Last day the chunk covers.';
comment on column public.documents.content is
'The text, e.g. "Spotify followers for X rose 4.2% (12,030 -> 12,535) in week 47".';
comment on column public.documents.content_tsv is 'English full-text vector of content.';
comment on column public.documents.embedding is
'384-dimension embedding of content (null until the embedding job runs).';
comment on column public.documents.embedding_model is
'Model that produced embedding; another configured model re-embeds.';
comment on column public.documents.created_at is 'When the chunk was first written.';
comment on column public.documents.updated_at is 'When its content last changed.';

create trigger documents_touch before update on public.documents
for each row execute function private.touch_updated_at();

revoke all on public.insights, public.documents from anon;
revoke insert, update, delete, truncate, references, trigger on public.insights, public.documents from authenticated;
grant insert (org_id, artist_id, kind, title, body, question, citations, answer_mode, evidence)
on public.insights to authenticated;

alter table public.insights enable row level security;
alter table public.documents enable row level security;

create policy insights_select on public.insights for select to authenticated
using (org_id in (select private.my_org_ids()));
create policy insights_insert on public.insights for insert to authenticated
with check (
    kind = 'answer'
    and created_by = (select auth.uid())
    and org_id in (select private.org_ids_with_permission('insights.ask'))
);
create policy documents_select on public.documents for select to authenticated
using (org_id in (select private.my_org_ids()));

alter publication supabase_realtime add table public.insights;

-- Only the system inserts here: the identity sequence is not the API roles' to advance.
revoke all on sequence public.documents_id_seq from anon, authenticated;
