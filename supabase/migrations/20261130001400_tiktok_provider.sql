-- =============================================================================================
-- Migration: tiktok_provider
-- TikTok, the fifth provider (arti/providers/tiktok.py): the `tiktok` value of public.provider.
--   * `alter type ... add value` may run inside a transaction block, but the new value cannot be
--     used before that transaction commits ("unsafe use of new value"). `arti db migrate` and
--     `supabase db push` both apply each migration file in one transaction, so everything that
--     names 'tiktok' (its quota rows) is in the next migration, 20261130001401_tiktok_quotas.
--   * Nothing else of the schema lists providers: connected accounts, tokens, OAuth states,
--     sync runs, quotas and webhooks take any value of the enum. The metric labels
--     (private.metric_label, sql_functions/insights/metric_labels.sql) name TikTok, and TikTok's
--     running totals (following, likes_total, videos) are cumulative for the anomaly detection.
-- =============================================================================================

alter type public.provider add value if not exists 'tiktok';

comment on type public.provider is
'A connected platform: spotify, youtube, instagram, soundcloud, tiktok.';
