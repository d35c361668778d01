-- RPC artist_overview: one artist with its accounts, their latest metrics, campaigns and last syncs.
create or replace function public.artist_overview(artist_id uuid)
returns jsonb
language plpgsql stable security invoker set search_path = ''
as $$
declare
    found public.artists;
begin
    if auth.uid() is null then
        raise exception 'sign in first: this request carries no user (its token has no sub claim)'
        using errcode = '42501';
    end if;
    select a.* into found from public.artists as a where a.id = artist_overview.artist_id;
    if found.id is null then
        raise exception 'artist not found' using errcode = 'P0002';
    end if;
    return jsonb_build_object(
        'artist', to_jsonb(found),
        'accounts', coalesce((
            select jsonb_agg(jsonb_build_object(
                'id', ca.id, 'provider', ca.provider, 'external_id', ca.external_id,
                'display_name', ca.display_name, 'status', ca.status,
                'last_synced_at', ca.last_synced_at, 'last_error', ca.last_error,
                'latest', coalesce((
                    select jsonb_object_agg(lm.metric, jsonb_build_object('day', lm.day, 'value', lm.value, 'note', lm.note))
                    from (
                        select distinct on (m.metric) m.metric, m.day, m.value, m.note
                        from public.metrics as m
                        where m.account_id = ca.id
                        order by m.metric, m.day desc
                    ) as lm
                ), '{}'::jsonb),
                'last_sync', (
                    select to_jsonb(sr) - 'org_id'
                    from public.sync_runs as sr
                    where sr.account_id = ca.id
                    order by sr.queued_at desc
                    limit 1
                )
            ) order by ca.provider)
            from public.connected_accounts as ca
            where ca.artist_id = found.id
        ), '[]'::jsonb),
        'campaigns', coalesce((
            select jsonb_agg(to_jsonb(c) order by c.starts_on desc)
            from public.campaigns as c
            where c.artist_id = found.id and c.status in ('draft', 'active', 'paused')
        ), '[]'::jsonb)
    );
end
$$;
comment on function public.artist_overview(uuid) is
'An artist with connected accounts (latest value per metric, last sync) and open campaigns, as JSON. '
'Error: P0002 when the artist does not exist or is not visible to the caller.';
revoke all on function public.artist_overview(uuid) from public, anon;
grant execute on function public.artist_overview(uuid) to authenticated, service_role;
