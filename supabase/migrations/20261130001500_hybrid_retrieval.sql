-- =============================================================================================
-- Migration: hybrid_retrieval
-- The indexes behind search_documents' bounded full-text side (issue 20; the functions are in
-- sql_functions/insights: search_documents.sql and fulltext_candidates.sql):
--   * Why: the hybrid mode that /functions/v1/insights/ask runs ranked every chunk of the organization
--     that matched any word of the question, with ts_rank_cd, after reading each of them from the
--     heap: under RLS Postgres never uses an index for `@@` (ts_match_vq is not leakproof). For the
--     largest benchmark tenant (133k chunks) "how did followers and plays change" matched 29.5k chunks
--     (hybrid p95 17x an unfiltered HNSW search), "How did Spotify followers change in week 47?" took
--     1.3 s at p95, and a question at the 64-term bound ran into the 8 s statement timeout (median 5 s).
--     private.fulltext_candidates (security definer, with the membership check the policy makes) now
--     ranks at most 3 x 1,000 chunks: the organization's newest matches, the matches of the question's
--     words that are rare among them, and the chunks holding all of its (4 least) common words, when
--     three or more are common. It reads them through:
--   * documents_org_recency_idx, btree (org_id, period_end desc, id desc) including artist_id and
--     content_tsv: an organization's chunks newest first with what matching and ranking need in the
--     index, so the newest 4,000 are an index-only walk (about 2 ms), whatever the organization's size.
--   * documents_org_tsv_idx, GIN (org_id, content_tsv): a question's words within one organization in
--     one index scan (1-2 ms for 3,000 matches in the largest tenant, against 37 ms for the bitmap AND of
--     the org_id btree and a GIN on content_tsv alone). It replaces documents_tsv_idx, whose only
--     reader was search_documents, which always filters by organization. A uuid column in a GIN index
--     needs btree_gin's operator classes.
--   * btree_gin goes in schema extensions (nothing of it in an exposed schema). It is contrib and
--     trusted, available in every mode: embedded (Debian's postgresql-15 package ships contrib; nothing
--     to add to scripts/install-system-deps.sh), docker (the supabase/postgres image ships contrib) and
--     cloud (btree_gin is among the extensions a Supabase project can enable; the `create extension`
--     below enables it whether `arti db migrate` or `supabase db push` applies this file).
--   * Building on the 1M-chunk benchmark corpus (2 vCPU, maintenance_work_mem 512 MB): 2-6 s for the
--     btree (295 MB) and 6-15 s for the GIN (51 MB), inside this migration's transaction, which blocks
--     writes to public.documents meanwhile. For a larger table, build them first with CREATE INDEX
--     CONCURRENTLY under these names: the `if not exists` below then skips them.
--   * Measured and not adopted (README.md, Performance): RUM, ordering by rank inside the index (it
--     still ranks every match, corpus-wide unless the organization is an indexed column, and was slower
--     than the exact ranking for small tenants and common words); a narrow full-text side table (it
--     shrinks the reading but not the ranking of every match).
-- =============================================================================================

create extension if not exists btree_gin with schema extensions;

create index if not exists documents_org_recency_idx on public.documents (org_id, period_end desc, id desc)
include (artist_id, content_tsv);
comment on index public.documents_org_recency_idx is
'search_documents'' full-text pool: an organization''s chunks newest first, index-only (artist and tsvector '
'included), so the walk reads a bounded number of the newest.';

create index if not exists documents_org_tsv_idx on public.documents using gin (org_id, content_tsv);
comment on index public.documents_org_tsv_idx is
'search_documents'' full-text matches within one organization (btree_gin for org_id): the question''s rare '
'words, and the chunks holding all of its common ones.';

drop index if exists public.documents_tsv_idx;
