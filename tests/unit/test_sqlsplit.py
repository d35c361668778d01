"""The statement splitter must never split inside strings, identifiers, comments or function bodies."""

from hypothesis import given
from hypothesis import strategies as st

from arti.sqlsplit import split_statements


def test_splits_on_top_level_semicolons_and_reports_lines() -> None:
    script = "-- banner\ncreate table a (x int);\n\ninsert into a values (1);\n"
    statements = split_statements(script)
    assert [s.text for s in statements] == ["-- banner\ncreate table a (x int)", "insert into a values (1)"]
    assert [s.line for s in statements] == [1, 4]


def test_semicolons_inside_quotes_comments_and_dollar_bodies_do_not_split() -> None:
    script = """
select 'a;b', "we;ird", E'it\\'s;here';
/* block ; /* nested ; */ still comment ; */ select 2;
create function f() returns int language plpgsql as $body$
begin
    perform 1; -- inner ; comment
    return $$;$$::text::int;
end
$body$;
select 'it''s;fine';
"""
    texts = [s.text for s in split_statements(script)]
    assert len(texts) == 4
    assert texts[0].startswith("select 'a;b'")
    assert texts[1].endswith("select 2")
    assert "perform 1;" in texts[2] and texts[2].endswith("$body$")
    assert texts[3] == "select 'it''s;fine'"


def test_comment_only_tail_is_not_a_statement() -> None:
    assert [s.text for s in split_statements("select 1;\n-- trailing comment\n")] == ["select 1"]


def test_dollar_in_identifier_is_not_a_quote() -> None:
    texts = [s.text for s in split_statements("select a$b from t; select 2;")]
    assert texts == ["select a$b from t", "select 2"]


@given(st.lists(st.text(alphabet="abc ;'$\n-", max_size=12), min_size=1, max_size=6))
def test_quoted_literals_survive_whole(parts: list[str]) -> None:
    literals = ["'" + p.replace("'", "''") + "'" for p in parts]
    script = ";\n".join(f"select {lit}" for lit in literals) + ";"
    texts = [s.text for s in split_statements(script)]
    assert texts == [f"select {lit}" for lit in literals]
