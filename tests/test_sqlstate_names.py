"""SQLSTATE condition names in messages, from psycopg's exception classes: the names
PostgreSQL itself knows the codes by."""

from __future__ import annotations

import psycopg
from psycopg import sql

from pytest_rlscheck.assertions import _sqlstate


def test_the_codes_rlscheck_reports_read_as_postgresql_names_them() -> None:
    assert [_sqlstate(code) for code in ("23514", "23502", "23503", "23505", "22P02", "22003", "42883", "42501")] == [
        "23514 check_violation", "23502 not_null_violation", "23503 foreign_key_violation",
        "23505 unique_violation", "22P02 invalid_text_representation", "22003 numeric_value_out_of_range",
        "42883 undefined_function", "42501 insufficient_privilege",
    ]
    assert _sqlstate("XX000") == "XX000 internal_error" and _sqlstate("38002") == "38002 modifying_sql_data_not_permitted"
    assert _sqlstate("22024") == "22024 unterminated_c_string"
    assert _sqlstate("ZZ999") == "ZZ999" and _sqlstate(None) == ""


def test_every_name_is_one_the_server_raises_by(rlscheck_session) -> None:
    """PL/pgSQL's RAISE takes a condition name: each name given for a code must raise that
    code, or one of the same name (PostgreSQL gives a few names to two codes)."""
    codes = sorted({
        cls.sqlstate for cls in vars(psycopg.errors).values()
        if isinstance(cls, type) and issubclass(cls, psycopg.Error) and getattr(cls, "sqlstate", None)
    })
    assert len(codes) > 200
    unknown, wrong = [], []
    with rlscheck_session.server.admin() as conn:
        for code in codes:
            name = _sqlstate(code).split(" ", 1)[1]
            raise_it = sql.SQL("do $$ begin raise exception using errcode = {}; end $$").format(sql.Literal(name))
            try:
                conn.execute(raise_it)
            except psycopg.Error as exc:
                if (exc.diag.message_primary or "").startswith("unrecognized exception condition"):
                    unknown.append((code, name))  # newer than this server, or not one RAISE takes (class 02)
                elif _sqlstate(exc.sqlstate) != f"{exc.sqlstate} {name}":
                    wrong.append((code, name, exc.sqlstate))
            else:
                wrong.append((code, name, None))
    assert wrong == []
    assert len(unknown) < 10, unknown
