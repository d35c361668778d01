-- RPC mark_all_notifications_read: the caller marks every unread notification of theirs read.
create or replace function public.mark_all_notifications_read()
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
    where n.user_id = auth.uid() and n.read_at is null;
    get diagnostics changed = row_count;
    return changed;
end
$$;
comment on function public.mark_all_notifications_read() is
'Marks all of the caller''s unread notifications read; returns how many. Runs as the caller (RLS).';
revoke all on function public.mark_all_notifications_read() from public, anon;
grant execute on function public.mark_all_notifications_read() to authenticated, service_role;
