-- =============================================================================================
-- Migration: insights' text is bounded by construction
--   * An answer's body held whatever the language model returned (3 MB was seen): stored, published
--     through Realtime and sent in webhooks whole. arti/insights.py now keeps at most 8,000
--     characters of a model's answer (truncated with a note) and refuses a response over 1 MiB;
--     the extractive answer (5 chunks of at most 4,000 characters) stays under 21,000. The table
--     now says so itself: body at most 24,000 characters (arti.insights.MAX_BODY_CHARS), metric at
--     most 63 (as public.metrics.metric), dedupe_key at most 300.
--   * Existing data: a body over the limit (only answers stored before this bound) is cut to the
--     limit with a visible marker, then the constraints are added and validated. metric and
--     dedupe_key are written only by detect_anomalies, from metric names of at most 63 characters.
-- =============================================================================================

update public.insights
set
    body = left(body, 24000 - char_length(E'\n\n[truncated: over 24000 characters]'))
    || E'\n\n[truncated: over 24000 characters]'
where char_length(body) > 24000;

alter table public.insights
add constraint insights_body_length check (char_length(body) <= 24000),
add constraint insights_metric_length check (char_length(metric) <= 63),
add constraint insights_dedupe_key_length check (char_length(dedupe_key) <= 300);

comment on constraint insights_body_length on public.insights is
'An insight''s text is at most 24,000 characters (arti.insights.MAX_BODY_CHARS): a model''s answer is cut before.';
comment on constraint insights_metric_length on public.insights is
'A metric name, as long as public.metrics.metric allows (63 characters).';
comment on constraint insights_dedupe_key_length on public.insights is
'account:metric:day:direction fits in 300 characters.';
