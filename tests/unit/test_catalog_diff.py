"""arti.catalog.diff: what it says about two snapshots (no database needed)."""

from __future__ import annotations

from arti.catalog import diff


def test_equal_snapshots_have_no_difference() -> None:
    snap = {"functions": {"public.f()": {"owner": "postgres", "acl": ["postgres=X/postgres"]}}}
    assert diff(snap, {"functions": {"public.f()": {"owner": "postgres", "acl": ["postgres=X/postgres"]}}}) == []


def test_each_object_on_one_side_and_each_differing_field_is_one_entry() -> None:
    left = {
        "functions": {
            "public.f()": {"owner": "postgres", "security_definer": True, "definition": "a\nb\nc\n"},
            "public.gone()": {"definition": "create function public.gone()"},
        },
        "policies": {},
    }
    right = {
        "functions": {"public.f()": {"owner": "supabase_admin", "security_definer": True, "definition": "a\nB\nc\n"}},
        "policies": {"public.t.p": {"command": "r"}},
    }
    lines = diff(left, right, "arti", "push")
    assert lines[0].startswith("functions: public.f(): definition differs:")
    assert "-b" in lines[0] and "+B" in lines[0]
    assert lines[1] == "functions: public.f(): owner: arti 'postgres' != push 'supabase_admin'"
    assert lines[2] == "functions: public.gone(): only in arti (definition: create function public.gone())"
    assert lines[3] == "policies: public.t.p: only in push"
    assert len(lines) == 4


def test_a_section_missing_on_one_side_lists_its_objects() -> None:
    assert diff({"cron_jobs": {"nightly": {"schedule": "0 2 * * *"}}}, {}) == ["cron_jobs: nightly: only in left"]
