"""Existence oracles, measured: a unique key that leaves out the tenant column tells a user
which values other tenants use.

Acting as a user, in a savepoint that is rolled back, a row is inserted into the user's own
tenant (a copy of one of their rows, fresh keys elsewhere) with the key's columns copied from
a row of another tenant. PostgreSQL checks the policies (and CHECK constraints) before the
unique index: 23505 on that key means RLS let the row through and only the other tenant's
row stopped it; the user has learnt that the value exists. A refusal (RLS, privileges)
tells nothing.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import psycopg
from psycopg import sql

from .catalog import Column, Relation
from .impersonation import Principal
from .rows import base_row, insert_statement, sample_row
from .scratch import bind, identity_sql, rolled_back
from .sqlsplit import tokens

if TYPE_CHECKING:
    from .protocol import RlsProtocol as Rls

__all__ = ["Oracle", "UniqueKey", "chosen_by_user", "existence_oracle", "secret_column", "shown_values", "unique_keys"]

UNIQUE_VIOLATION = "23505"
#: Words of a column name that say its values are unguessable secrets (a token, a hash): a
#: duplicate tells nothing to a user who would have to guess the value first.
SECRET_WORDS = frozenset({
    "token", "secret", "hash", "hashed", "digest", "nonce", "signature", "apikey", "salt", "otp",
})


@dataclass(frozen=True)
class UniqueKey:
    name: str  # the constraint's, or the unique index's
    columns: tuple[str, ...]
    constraint: bool  # a UNIQUE / PRIMARY KEY constraint (else a unique index alone)
    primary: bool = False  # the PRIMARY KEY


@dataclass(frozen=True)
class Oracle:
    """A measured oracle: acting as ``user``, the insert failed on ``key`` with ``other``'s values."""

    user: Principal
    other: Principal
    key: UniqueKey
    values: dict[str, Any]
    statement: str
    error: str


def chosen_by_user(column: Column) -> bool:
    """Whether the user writes the column's value: not generated, not an identity, and no
    DEFAULT that computes one (``gen_random_uuid()``, ``nextval(...)``: a call)."""
    if column.generated or column.identity:
        return False
    if not column.default:
        return True
    code = [(k, s, e) for k, s, e in tokens(column.default) if k not in ("space", "comment", "block")]
    text = column.default
    return not any(
        k in ("word", "quoted") and i + 1 < len(code) and text[code[i + 1][1] : code[i + 1][2]] == "("
        for i, (k, s, e) in enumerate(code)
    )


def secret_column(name: str) -> bool:
    """Whether the column's name says it holds a secret: ``token``, ``invite_token``,
    ``api_key``, ``password_hash``, ``signature``... (a word of the name, split at ``_``,
    ``-``, spaces and case changes)."""
    words = [w.lower() for w in re.findall(r"[A-Z]?[a-z0-9]+|[A-Z]+(?![a-z])", name)]
    return any(w in SECRET_WORDS for w in words) or any(a + b in ("apikey", "secretkey", "privatekey")
                                                        for a, b in zip(words, words[1:]))


def unique_keys(rel: Relation) -> list[UniqueKey]:
    """Its unique constraints and (not partial, on columns only) unique indexes."""
    keys = [UniqueKey(c.name, c.columns, True, c.type == "p") for c in rel.constraints if c.type in ("u", "p")]
    named = {k.name for k in keys}
    keys += [
        UniqueKey(i.name, tuple(c for c in i.columns if c), False)
        for i in rel.indexes
        if i.unique and i.valid and not i.partial and i.name not in named and all(i.columns)
    ]
    return keys


def existence_oracle(rls: Rls, rel: Relation, tenant_column: str, key: UniqueKey, user: Principal,
                     other: Principal) -> Oracle | None:
    """The oracle ``key`` gives ``user`` about ``other``'s tenant, if the insert proves it."""
    identity = rls.identity_for(user)
    if identity is None or not rel.granted(identity.role, "INSERT"):
        return None  # refused before any row is looked at
    conn = rls.connection
    tenant = sql.Identifier(tenant_column)
    theirs_where = sql.SQL(" and ").join(
        [sql.SQL("{}::text = %(tenant)s").format(tenant)] + [sql.SQL("{} is not null").format(sql.Identifier(c)) for c in key.columns]
    )
    with rls.as_owner(), rls.safely():
        theirs = sample_row(conn, rel, theirs_where, {"tenant": str(other.tenant)})
        own = sample_row(conn, rel, sql.SQL("{}::text = %(tenant)s").format(tenant), {"tenant": str(user.tenant)})
    if theirs is None:
        return None
    values = {c: theirs[c] for c in key.columns}
    row = base_row(rel, own or theirs, {**values, tenant_column: (own or {}).get(tenant_column, user.tenant)}, keep={tenant_column})
    query, params = insert_statement(rel, row)
    statement = bind(conn, query, params)
    try:
        rolled_back(conn, [identity_sql(conn, identity, rls.settings_in_effect()), statement])
    except psycopg.Error as exc:
        if exc.sqlstate == UNIQUE_VIOLATION and exc.diag.constraint_name == key.name:
            return Oracle(user, other, key, values, statement, f"{exc.sqlstate} (duplicate key)")
    return None


def shown_values(values: dict[str, Any], columns: Sequence[str]) -> str:
    return ", ".join(f"{c} = {sql.Literal(str(values[c])).as_string(None)}" for c in columns)
