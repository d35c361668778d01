-- =============================================================================================
-- Migration: audit log
-- An append-only record of membership, role, invitation, organization and connection changes,
-- written by triggers in the same transaction as the change. Nobody updates or deletes a row:
-- privileges are revoked from every API role and a trigger refuses it even for the owner.
-- Readable by org admins (audit.read) and platform administrators.
-- =============================================================================================

create table public.audit_log (
    id bigint generated always as identity primary key,
    org_id uuid,
    actor_id uuid,
    action text not null check (action ~ '^[a-z_]+\.[a-z_]+$'),
    target_table text not null,
    target_id text,
    old_data jsonb,
    new_data jsonb,
    created_at timestamptz not null default now()
);
create index audit_log_org_id_idx on public.audit_log (org_id, created_at desc);
comment on table public.audit_log is 'Append-only history of security-relevant changes, written by triggers.';
comment on column public.audit_log.id is 'Entry id, increasing.';
comment on column public.audit_log.org_id is 'Organization concerned (kept after the organization is deleted).';
comment on column public.audit_log.actor_id is
'User whose request made the change; null for the system (worker, migrations).';
comment on column public.audit_log.action is 'What happened, e.g. membership.insert, connected_account.update.';
comment on column public.audit_log.target_table is 'Table of the changed row.';
comment on column public.audit_log.target_id is 'Primary key of the changed row, as text.';
comment on column public.audit_log.old_data is 'The row before the change (update, delete).';
comment on column public.audit_log.new_data is 'The row after the change (insert, update).';
comment on column public.audit_log.created_at is 'When it happened.';

create function private.write_audit_log() returns trigger
language plpgsql security definer set search_path = ''
as $$
declare
    old_row jsonb := case when tg_op in ('UPDATE', 'DELETE') then to_jsonb(old) end;
    new_row jsonb := case when tg_op in ('INSERT', 'UPDATE') then to_jsonb(new) end;
    row_data jsonb := coalesce(new_row, old_row);
    entity text := coalesce(tg_argv[0], tg_table_name);
begin
    if tg_op = 'UPDATE' and old_row = new_row then
        return null;
    end if;
    insert into public.audit_log (org_id, actor_id, action, target_table, target_id, old_data, new_data)
    values (
        coalesce((row_data ->> 'org_id')::uuid, case when tg_table_name = 'organizations' then (row_data ->> 'id')::uuid end),
        auth.uid(),
        entity || '.' || lower(tg_op),
        tg_table_schema || '.' || tg_table_name,
        coalesce(row_data ->> 'id', concat_ws(':', row_data ->> 'org_id', row_data ->> 'user_id')),
        old_row,
        new_row
    );
    return null;
end
$$;
comment on function private.write_audit_log() is
'Trigger: appends the change of the row to public.audit_log (argument: entity name for the action).';

create function private.refuse_audit_log_change() returns trigger
language plpgsql set search_path = ''
as $$
begin
    raise exception 'audit_log is append-only: entries cannot be changed or deleted'
    using errcode = '42501';
end
$$;
comment on function private.refuse_audit_log_change() is 'Trigger: keeps public.audit_log append-only.';

create trigger audit_log_append_only before update or delete on public.audit_log
for each row execute function private.refuse_audit_log_change();
create trigger audit_log_no_truncate before truncate on public.audit_log
for each statement execute function private.refuse_audit_log_change();

create trigger memberships_audit after insert or update or delete on public.memberships
for each row execute function private.write_audit_log('membership');
create trigger invitations_audit after insert or update or delete on public.invitations
for each row execute function private.write_audit_log('invitation');
create trigger organizations_audit after insert or update or delete on public.organizations
for each row execute function private.write_audit_log('organization');
create trigger connected_accounts_audit after insert or update of status, artist_id or delete
on public.connected_accounts
for each row execute function private.write_audit_log('connected_account');

revoke execute on function private.write_audit_log(), private.refuse_audit_log_change() from public;

revoke all on public.audit_log from anon;
revoke insert, update, delete, truncate, references, trigger on public.audit_log
from authenticated, service_role;

alter table public.audit_log enable row level security;
create policy audit_log_select on public.audit_log for select to authenticated
using (org_id in (select private.org_ids_with_permission('audit.read')) or (select private.is_platform_admin()));

-- Only the system inserts here: the identity sequence is not the API roles' to advance.
revoke all on sequence public.audit_log_id_seq from anon, authenticated;
