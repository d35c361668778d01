"""Tenancy decisions of issue 16 item 5: invitations die with their sender's standing, slugs are no oracle,
notifications of an organization are for its current members."""

from __future__ import annotations

import re
import uuid
from typing import Any

import psycopg
import pytest

from tests.factories import World, build_world
from tests.harness import TestDB


def _invite(db: TestDB, world: World, sender: str, email: str, role: str) -> dict[str, Any]:
    with db.as_user(world.users[sender]):
        return db.value("select public.invite_member(%s, %s, %s)", (world.ids["org_a"], email, role))


def _accept(db: TestDB, token: str, email: str) -> uuid.UUID:
    user = db.create_user(email)
    with db.as_user(user, email=email):
        return db.value("select public.accept_invitation(%s)", (token,))


def _revoked(db: TestDB, invitation_id: str) -> bool:
    return db.value("select revoked_at is not null from public.invitations where id = %s", (invitation_id,))


def _refused_acceptance(db: TestDB, token: str, email: str) -> None:
    with pytest.raises(psycopg.Error) as caught:
        _accept(db, token, email)
    assert caught.value.sqlstate == "22023"
    assert "revoked" in (caught.value.diag.message_primary or "") or "no longer valid" in (
        caught.value.diag.message_primary or "")
    assert db.value("select count(*) from public.memberships m join auth.users u on u.id = m.user_id "
                    "where u.email = %s", (email,)) == 0


def test_a_removed_admins_invitation_dies(db: TestDB) -> None:
    """The finding: a removed admin's second account still joined as admin."""
    world = build_world(db)
    invite = _invite(db, world, "admin", "second-account@example.test", "admin")
    with db.as_user(world.users["owner"]):
        db.execute("select public.remove_member(%s, %s)", (world.ids["org_a"], world.users["admin"]))
    assert _revoked(db, invite["invitation_id"])
    _refused_acceptance(db, invite["token"], "second-account@example.test")


@pytest.mark.parametrize(("invited", "new_role", "dies"), [
    ("admin", "manager", True),   # below the invited role, and no members.manage any more
    ("viewer", "manager", True),  # the role still covers it, but they may no longer invite at all
    ("admin", "admin", False),    # unchanged
])
def test_an_admins_invitation_follows_their_new_role(db: TestDB, invited: str, new_role: str, dies: bool) -> None:
    world = build_world(db)
    email = f"invited-{invited}@example.test"
    invite = _invite(db, world, "admin", email, invited)
    with db.as_user(world.users["owner"]):
        db.execute("select public.set_member_role(%s, %s, %s)", (world.ids["org_a"], world.users["admin"], new_role))
    assert _revoked(db, invite["invitation_id"]) is dies
    if dies:
        _refused_acceptance(db, invite["token"], email)
    else:
        assert _accept(db, invite["token"], email) == world.ids["org_a"]


def test_an_owner_stepping_down_to_admin_keeps_their_admin_invitation_and_loses_the_owner_one(db: TestDB) -> None:
    world = build_world(db)
    db.execute("update public.memberships set role = 'owner' where org_id = %s and user_id = %s",
               (world.ids["org_a"], world.users["extra"]))
    as_admin = _invite(db, world, "owner", "future-admin@example.test", "admin")
    as_owner = _invite(db, world, "owner", "future-owner@example.test", "owner")
    with db.as_user(world.users["owner"]):
        db.execute("select public.set_member_role(%s, %s, 'admin')", (world.ids["org_a"], world.users["owner"]))
    assert not _revoked(db, as_admin["invitation_id"])
    assert _revoked(db, as_owner["invitation_id"])
    assert _accept(db, as_admin["token"], "future-admin@example.test") == world.ids["org_a"]
    _refused_acceptance(db, as_owner["token"], "future-owner@example.test")


def test_acceptance_checks_the_sender_again(db: TestDB) -> None:
    """An invitation that escaped the trigger (sent before it existed, or its sender's account deleted: invited_by
    is then NULL) is refused when accepted."""
    world = build_world(db)
    invite = _invite(db, world, "admin", "orphan@example.test", "viewer")
    db.execute("update public.invitations set invited_by = null where id = %s", (invite["invitation_id"],))
    _refused_acceptance(db, invite["token"], "orphan@example.test")
    other = _invite(db, world, "admin", "stale@example.test", "admin")
    db.execute("alter table public.memberships disable trigger memberships_retire_invitations")
    db.execute("update public.memberships set role = 'viewer' where org_id = %s and user_id = %s",
               (world.ids["org_a"], world.users["admin"]))
    db.execute("alter table public.memberships enable trigger memberships_retire_invitations")
    assert not _revoked(db, other["invitation_id"])
    _refused_acceptance(db, other["token"], "stale@example.test")


SLUG = re.compile(r"^(?P<base>[a-z0-9-]+)-[0-9a-f]{6}$")


def test_create_organization_answers_the_same_for_taken_and_free_slugs(db: TestDB) -> None:
    """23505 for a taken slug was an oracle on other organizations' slugs. Now every slug gets a random suffix, so
    the answer has the same shape whatever other organizations hold."""
    world = build_world(db)
    taken = db.value("select slug from public.organizations where id = %s", (world.ids["org_a"],))
    answers = {}
    with db.as_user(world.users["outsider"]):
        for asked in (taken, "never-used-before", None):
            answers[asked] = db.one("select slug, name from public.create_organization(%s, %s)", ("Org A", asked))
    for asked, answer in answers.items():
        match = SLUG.match(answer["slug"])
        assert match, answer
        assert match["base"] == (asked or "org-a")
    assert answers[taken]["slug"] != taken


def test_derived_slugs_do_not_reveal_a_name_in_use_either(db: TestDB) -> None:
    world = build_world(db)
    with db.as_user(world.users["outsider"]):
        in_use = db.value("select slug from public.create_organization('Org B')")
        fresh = db.value("select slug from public.create_organization('Completely Fresh Name')")
    for slug, base in ((in_use, "org-b"), (fresh, "completely-fresh-name")):
        match = SLUG.match(slug)
        assert match and match["base"] == base, slug


def test_a_removed_member_no_longer_reads_the_organizations_notifications(db: TestDB) -> None:
    world = build_world(db)
    viewer, notification = world.users["viewer"], world.ids["notification"]
    personal = db.value("insert into public.notifications (user_id, kind, title) values (%s, 'account.notice', "
                        "'Personal') returning id", (viewer,))
    with db.as_user(viewer):
        assert db.value("select count(*) from public.notifications where id = %s", (notification,)) == 1
    with db.as_user(world.users["owner"]):
        db.execute("select public.remove_member(%s, %s)", (world.ids["org_a"], viewer))
    with db.as_user(viewer):
        visible = {r["id"] for r in db.execute("select id from public.notifications")}
        assert notification not in visible
        assert personal in visible  # a notification about no organization stays the user's
        assert db.execute("update public.notifications set read_at = now() where id = %s returning id",
                          (notification,)) == []
        assert db.execute("delete from public.notifications where id = %s returning id", (notification,)) == []
        assert db.value("select public.mark_all_notifications_read()") == 1  # only the personal one
    with pytest.raises(psycopg.Error) as caught, db.as_user(viewer):
        db.execute("select public.mark_notification_read(%s)", (notification,))
    assert caught.value.sqlstate == "P0002"
    # Back in the organization, they are theirs again (they were addressed to them).
    db.execute("insert into public.memberships (org_id, user_id, role) values (%s, %s, 'viewer')",
               (world.ids["org_a"], viewer))
    with db.as_user(viewer):
        assert db.value("select count(*) from public.notifications where id = %s", (notification,)) == 1
