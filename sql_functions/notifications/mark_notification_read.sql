-- RPC mark_notification_read: the caller marks one of their notifications read (RLS limits it to their own).
create or replace function public.mark_notification_read(notification_id uuid)
returns integer
language plpgsql volatile security invoker set search_path = ''
as $$
declare
    changed integer;
begin
    if auth.uid() is null then
        raise exception 'sign in first: this request carries no user (its token has no sub claim)'
        using errcode = '42501';
    end if;
    update public.notifications as n set read_at = now()
    where n.id = mark_notification_read.notification_id and n.read_at is null;
    get diagnostics changed = row_count;
    if changed = 0 and not exists (
        select 1 from public.notifications as n where n.id = mark_notification_read.notification_id
    ) then
        raise exception 'notification not found' using errcode = 'P0002';
    end if;
    return changed;
end
$$;
comment on function public.mark_notification_read(uuid) is
'Marks one of the caller''s notifications read. Returns 1, or 0 when it was already read. Runs as the caller '
'(RLS: own notifications only). Errors: P0002 not found (or not the caller''s).';
revoke all on function public.mark_notification_read(uuid) from public, anon;
grant execute on function public.mark_notification_read(uuid) to authenticated, service_role;
