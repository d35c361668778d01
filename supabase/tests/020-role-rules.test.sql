-- Role rules: the last owner stays, nobody promotes themselves or grants above their own role,
-- invitations expire and are single use.
begin;
\ir helpers/supabase_test_helpers.psql
select plan(14);

select tests.create_supabase_user('owner1');
select tests.create_supabase_user('owner2');
select tests.create_supabase_user('admin1');
select tests.create_supabase_user('manager1');
select tests.create_supabase_user('invitee', 'invitee@example.test');
select tests.create_supabase_user('stranger', 'stranger@example.test');

select tests.authenticate_as('owner1');
create temporary table ctx on commit drop as
select (public.create_organization('Rules Org', 'rules-org')).id as org_id;
grant select on ctx to public;

select tests.authenticate_as_service_role();
insert into public.memberships (org_id, user_id, role)
select
    ctx.org_id,
    tests.get_supabase_uid(u.name) as user_id,
    u.role::public.org_role as role
from ctx cross join (values ('admin1', 'admin'), ('manager1', 'manager')) as u (name, role);

-- The last owner can neither be demoted nor removed, not even by themselves.
select tests.authenticate_as('owner1');
select throws_ok(
    format(
        'select public.set_member_role(%L, %L, %L)',
        (select org_id from ctx), tests.get_supabase_uid('owner1'), 'admin'
    ),
    '22023', 'the last owner cannot be demoted; make another member owner first',
    'the last owner cannot demote themselves'
);
select throws_ok(
    format(
        'select public.remove_member(%L, %L)',
        (select org_id from ctx), tests.get_supabase_uid('owner1')
    ),
    '22023', 'the last owner cannot be removed; make another member owner first',
    'the last owner cannot leave'
);

-- An admin cannot touch the owner, nor promote anyone (themselves included) above admin.
select tests.authenticate_as('admin1');
select throws_ok(
    format(
        'select public.set_member_role(%L, %L, %L)',
        (select org_id from ctx), tests.get_supabase_uid('owner1'), 'viewer'
    ),
    '42501', 'you cannot change the role of a member ranked above you',
    'an admin cannot demote the owner'
);
select throws_ok(
    format(
        'select public.set_member_role(%L, %L, %L)',
        (select org_id from ctx), tests.get_supabase_uid('admin1'), 'owner'
    ),
    '42501', 'you cannot grant a role above your own (admin)',
    'an admin cannot promote themselves to owner'
);
select lives_ok(
    format(
        'select public.set_member_role(%L, %L, %L)',
        (select org_id from ctx), tests.get_supabase_uid('manager1'), 'admin'
    ),
    'an admin may grant admin (their own rank)'
);

-- A manager has no members.manage at all, so no self-promotion either.
select tests.authenticate_as('manager1');
select throws_ok(
    format(
        'select public.set_member_role(%L, %L, %L)',
        (select org_id from ctx), tests.get_supabase_uid('manager1'), 'owner'
    ),
    '42501', null, 'a member without members.manage cannot promote themselves'
);

-- With a second owner, the first may step down.
select tests.authenticate_as('owner1');
select tests.authenticate_as_service_role();
insert into public.memberships (org_id, user_id, role)
select
    ctx.org_id,
    tests.get_supabase_uid('owner2') as user_id,
    'owner' as role
from ctx;
select tests.authenticate_as('owner1');
select lives_ok(
    format(
        'select public.set_member_role(%L, %L, %L)',
        (select org_id from ctx), tests.get_supabase_uid('owner1'), 'admin'
    ),
    'an owner may step down while another owner remains'
);
select tests.authenticate_as('owner2');
select throws_ok(
    format(
        'select public.remove_member(%L, %L)',
        (select org_id from ctx), tests.get_supabase_uid('owner2')
    ),
    '22023', null, 'and now owner2 is the last owner'
);

-- Invitations: single use.
create temporary table invite on commit drop as
select public.invite_member((select org_id from ctx), 'invitee@example.test', 'viewer') as body;
grant select on invite to public;
select tests.authenticate_as('stranger');
select throws_ok(
    format(
        'select public.accept_invitation(%L)',
        (select body ->> 'token' from invite)
    ),
    '42501', 'this invitation was sent to another email address; sign in with that address',
    'only the invited email can accept'
);
select tests.authenticate_as('invitee');
select is(
    public.accept_invitation((select body ->> 'token' from invite)), (select org_id from ctx),
    'the invitee joins'
);
select throws_ok(
    format(
        'select public.accept_invitation(%L)',
        (select body ->> 'token' from invite)
    ),
    '23505', 'this invitation has already been used', 'an invitation cannot be reused'
);

-- Invitations: expiry.
select tests.authenticate_as('owner2');
create temporary table late on commit drop as
select public.invite_member((select org_id from ctx), 'stranger@example.test', 'viewer') as body;
grant select on late to public;
select tests.authenticate_as_service_role();
update public.invitations set expires_at = now() - interval '1 minute'
where
    id = (select (body ->> 'invitation_id')::uuid from late);
select tests.authenticate_as('stranger');
select throws_like(
    format(
        'select public.accept_invitation(%L)',
        (select body ->> 'token' from late)
    ),
    'this invitation expired on %', 'an expired invitation cannot be accepted'
);
select is(
    (
        select count(*)::integer from public.memberships
        where user_id = tests.get_supabase_uid('stranger')
    ), 0,
    'and nobody joined through it'
);

-- Revoked invitations are refused too.
select tests.authenticate_as('owner2');
select lives_ok(
    format(
        'select public.revoke_invitation(%L)',
        (select (body ->> 'invitation_id')::uuid from late)
    ),
    'an owner revokes an invitation'
);

select * from finish();
rollback;
