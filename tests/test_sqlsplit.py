"""Statement splitting: boundaries psql would find, positions, and what runs outside a transaction."""

from __future__ import annotations

import pytest
import sqlparse

from pytest_rlscheck.sqlsplit import MetaCommandError, SourceText, SplitError, dollar_bodies, split

TRICKY = {
    "dollar body with semicolons": (
        "create function f() returns int language plpgsql as $body$\n"
        "begin\n  perform 1; perform 2;\n  return 3;\nend;\n$body$",
        1,
    ),
    "tagged dollar quote containing $$": ("select $x$ a $$ ; b $x$", 1),
    "nested block comment": ("select 1 /* outer /* inner ; */ still ; */ + 1", 1),
    "E'' string with escaped quote": ("select E'it\\'s; fine'", 1),
    "standard string ending in a backslash": ("select 'C:\\'", 1),
    "doubled quotes": ("select 'a''b;c'", 1),
    "quoted identifier": ('select 1 as "we;ird"', 1),
    "line comment": ("select 1 -- not ; the end\n + 1", 1),
    "BEGIN ATOMIC body": (
        "create function g() returns int language sql\nbegin atomic\n"
        "  select case when true then 1 end;\n  select 2;\nend",
        1,
    ),
    "identifier with dollar": ("select 1 as a$b$c", 1),
    "rule with several actions": (
        "create rule r as on insert to t do also (insert into u values (1); insert into u values (2))",
        1,
    ),
}


@pytest.mark.parametrize("name", list(TRICKY))
def test_tricky_statement_stays_whole(name: str) -> None:
    text, count = TRICKY[name]
    statements = split(f"{text};\nselect 'next';")
    assert [s.text for s in statements] == [text, "select 'next'"][: count + 1]


def test_sqlparse_alone_gets_these_wrong() -> None:
    """Why boundaries come from our scanner: sqlparse.split breaks two of the cases above."""
    assert len(sqlparse.split("select 1 /* a /* b ; */ c ; */ + 1; select 2;")) != 2
    assert len(sqlparse.split("select 'C:\\'; select 2; -- '")) != 2


def test_every_piece_is_a_complete_statement_for_postgres(rls) -> None:
    """Run the split pieces on the real server: each must parse and execute on its own."""
    rls.execute("create table t (a int)")
    rls.execute("create table u (a int)")
    script = ";\n".join(text for text, _ in TRICKY.values()) + ";"
    statements = split(script)
    assert len(statements) == len(TRICKY)
    for statement in statements:
        rls.execute(statement.text)
    assert rls.scalar("select g()") == 2
    assert rls.scalar("select E'it\\'s; fine'") == "it's; fine"


def test_positions_are_line_and_column_of_first_token() -> None:
    text = "-- header\n\n  /* note */ select 1;\n\tselect\n  2 ;  select 3"
    statements = split(text)
    assert [(s.line, s.column) for s in statements] == [(3, 14), (4, 2), (5, 8)]
    assert [s.text for s in statements] == ["select 1", "select\n  2", "select 3"]
    source = SourceText(text)
    assert source.locate(statements[1].start) == (4, 2)


def test_empty_statements_and_trailing_comments_are_dropped() -> None:
    assert [s.text for s in split(";; select 1;; -- end\n/* done */")] == ["select 1"]


@pytest.mark.parametrize(
    "statement, outside",
    [
        ("create index concurrently i on t (a)", True),
        ("CREATE UNIQUE INDEX CONCURRENTLY IF NOT EXISTS i ON t (a)", True),
        ("drop index concurrently if exists i", True),
        ("reindex table concurrently t", True),
        ("reindex (concurrently) table t", True),
        ("reindex database db", True),
        ("vacuum analyze t", True),
        ("alter system set work_mem = '64MB'", True),
        ("create database d", True),
        ("drop database d", True),
        ("alter table t detach partition p concurrently", True),
        ("create index i on t (a)", False),
        ("create index concurrently_named on t (a)", False),
        ("alter table t detach partition p", False),
        ("reindex table t", False),
        ("refresh materialized view concurrently m", False),
        ("select 'vacuum'", False),
    ],
)
def test_statements_that_cannot_run_in_a_transaction(statement: str, outside: bool) -> None:
    (parsed,) = split(statement)
    assert parsed.no_transaction is outside


def test_psql_meta_command_is_refused_with_its_position() -> None:
    with pytest.raises(MetaCommandError) as info:
        split("select 1;\n\n  \\i other.sql\nselect 2;")
    assert (info.value.command, info.value.line, info.value.column) == ("\\i", 3, 3)
    assert "not through psql" in str(info.value)


def test_backslash_inside_strings_is_not_a_meta_command() -> None:
    assert len(split("select E'\\\\set'; select $$\\i$$; select '\\'")) == 3


def test_dollar_bodies_give_offsets_of_function_code() -> None:
    text = "create function f() returns void as $fn$\nbegin\nend$fn$ language plpgsql"
    ((offset, body),) = dollar_bodies(text)
    assert text[offset:].startswith("\nbegin") and body == "\nbegin\nend"


# -- dumps: COPY data, \restrict, \connect ----------------------------------------------------


def test_copy_from_stdin_takes_the_lines_up_to_the_terminator() -> None:
    text = (
        "\\restrict abc123\n\nSET search_path = '';\n"
        "COPY public.t (a, b) FROM stdin;\n1\tx;y\n2\t\\N\n\\.\n"
        "select 'after';\n\\unrestrict abc123\n"
    )
    statements = split(text)
    assert [s.text for s in statements] == ["SET search_path = ''", "COPY public.t (a, b) FROM stdin", "select 'after'"]
    copy = statements[1]
    assert (copy.copy, copy.line, copy.copy_data) == ("from", 4, "1\tx;y\n2\t\\N\n")
    assert SourceText(text).locate(copy.copy_data_start) == (5, 1)
    assert statements[2].line == 8


@pytest.mark.parametrize(
    "statement, direction",
    [
        ("COPY t FROM stdin", "from"),
        ('copy "T" (a, "from") from STDIN with (format csv, header true)', "from"),
        ("copy (select 1) to stdout", "to"),
        ("copy t from '/tmp/file'", None),
        ("copy t from program 'cat'", None),
        ("select 'copy t from stdin'", None),
        ("copy t (stdin) to '/tmp/x'", None),
    ],
)
def test_which_copy_statements_carry_data(statement: str, direction: str | None) -> None:
    (parsed,) = split(statement + ";\n")
    assert parsed.copy == direction


def test_copy_data_runs_to_the_end_of_the_file_without_a_terminator() -> None:
    (copy,) = split("copy t from stdin;\r\n1\r\n2")
    assert copy.copy_data == "1\r\n2"
    ((_, data),) = [(s.text, s.copy_data) for s in split("copy t from stdin;\n1\n\\.\r\n")]
    assert data == "1\n"


def test_copy_data_is_not_sql() -> None:
    """Quotes, semicolons, dollar signs and backslashes in rows are data, not tokens."""
    (copy, after) = split("copy t from stdin; -- rows follow\n'$$ /* ;\n\\i x\n\\.\nselect 2")
    assert copy.copy_data == "'$$ /* ;\n\\i x\n" and after.text == "select 2"


def test_text_after_copy_from_stdin_on_its_line_is_refused() -> None:
    with pytest.raises(SplitError) as info:
        split("copy t from stdin; select 1;\n1\n\\.\n")
    assert (info.value.line, info.value.column) == (1, 20)
    assert "data starts on the next line" in str(info.value)


def test_restrict_inside_a_statement_and_connect_are_refused() -> None:
    with pytest.raises(MetaCommandError) as info:
        split("select\n\\restrict key\n1;")
    assert (info.value.command, info.value.line) == ("\\restrict", 2)
    with pytest.raises(MetaCommandError) as info:
        split("CREATE DATABASE app;\n\\connect app\nselect 1;")
    assert (info.value.command, info.value.line, info.value.column) == ("\\connect", 2, 1)
    assert "pg_dump --create (-C) and pg_dumpall" in str(info.value)
