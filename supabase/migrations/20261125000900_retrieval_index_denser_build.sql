-- =============================================================================================
-- Migration: HNSW graph built with ef_construction = 256, so no tenant's chunks sit on an island
--   * public.documents_embedding_idx is rebuilt with ef_construction = 256 (migration …0700 set
--     128; m stays 16, so the index keeps its size and its search cost per visited node).
--   * Why: with 128, a benchmark query for a 12k-chunk organization (bench/README.md) landed in
--     a region of the graph from which its true neighbours could not be reached: the search
--     settled on chunks at cosine distance 0.52 while the nearest, at 0.17, only turned up at
--     ef_search = 1000 (10x the work on every query). Clustered corpora, which tenants' chunks
--     about the same topics are, leave such weakly linked clusters when the build looks at too
--     few candidates per insert. On a 200k sample of the corpus, the share of chunks that a
--     search for their own vector could not find at ef_search = 40 went from 4.8% (128) to 0%.
--   * The price is build time (about 2.5x that of 128), paid once per rebuild.
--   * Rebuilding skips itself when the index already has these options, so an operator can build
--     it ahead of the deploy (CREATE INDEX CONCURRENTLY under another name, then rename) and
--     this migration does nothing. Give the session that runs it enough maintenance_work_mem
--     for the graph (about 2 kB per chunk) or the build slows down sharply.
-- =============================================================================================

do $rebuild$
begin
    if not exists (
        select
        from pg_catalog.pg_class as index_class
        where
            index_class.oid = to_regclass('public.documents_embedding_idx')
            and index_class.reloptions @> array['m=16', 'ef_construction=256']
    ) then
        drop index if exists public.documents_embedding_idx;
        create index documents_embedding_idx on public.documents
        using hnsw (embedding extensions.vector_cosine_ops) with (m = 16, ef_construction = 256);
    end if;
end
$rebuild$;

comment on index public.documents_embedding_idx is
'HNSW (cosine) over chunk embeddings, m = 16, ef_construction = 256: search_documents'' vector side, '
'with iterative scans for the organization filter.';
