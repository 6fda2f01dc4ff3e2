"""The tenant model: which tenant (or user) a row belongs to, as configured or as the
schema says — a tenant column by name, a ``tenant_sql`` expression, or the one column the
policies compare with the caller's user id (a per-user table). The probes
(:mod:`pytest_rlscheck.isolation`) and the static rules read it; it runs no query."""

from __future__ import annotations

import re
from dataclasses import dataclass

from psycopg import sql

from .catalog import Relation
from .config import SweepConfig
from .errors import RlsAssertionError

__all__ = [
    "TENANT_COLUMN_GUESSES",
    "TenantKey",
    "configured_key",
    "example_policy_condition",
    "find_tenant_key",
    "owner_column",
    "policy_expression",
    "tenant_key",
    "updatable_column",
]

TENANT_COLUMN_GUESSES = ("organization_id", "tenant_id", "org_id", "account_id", "team_id", "workspace_id")


@dataclass(frozen=True)
class TenantKey:
    """Where a row's tenant comes from: a column, or an expression over the row."""

    column: str | None = None
    expression: str | None = None
    per_user: bool = False  # the column holds the owner's user id: a principal's tenant is its sub

    def sql(self, alias: str = "t") -> sql.Composable:
        if self.column:
            return sql.Identifier(alias, self.column)
        return sql.SQL("({})").format(sql.SQL(self.expression or "null"))

    def describe(self) -> str:
        if self.per_user:
            return f"column {self.column} (the owning user)" if self.column else f"{self.expression} (the owning user)"
        return f"column {self.column}" if self.column else f"tenant_sql {self.expression}"


def configured_key(rel: Relation, column: str | None, expression: str | None) -> TenantKey:
    """A configured key; a ``tenant_sql`` that only names a column of the row is that column
    (so that the move check can set it)."""
    if not column and expression:
        m = re.fullmatch(r'\s*\(?\s*"?(\w+)"?\s*\)?\s*', expression)
        if m and rel.column(m.group(1)):
            return TenantKey(m.group(1))
    return TenantKey(column, None if column else expression)


def owner_column(rel: Relation) -> str | None:
    """A per-user table's owner column: the one column the policies compare with the caller's
    user id (``user_id = (select auth.uid())``)."""
    found = {
        column
        for policy in rel.policies
        for _, _, facts in policy.clauses()
        for column in facts.compared_with_user()
    }
    # Several (sender_id and recipient_id, created_by and assignee_id): a row belongs to more
    # than one user, and no single column says whose it is.
    return next(iter(found)) if len(found) == 1 else None


def policy_expression(rel: Relation, *, user: bool) -> str | None:
    """The one expression over the row (``(storage.foldername(name))[1]``) the policies
    compare with the caller's user id (``user``), or test against a set of tenants."""
    found = {
        expression
        for policy in rel.policies
        for _, _, facts in policy.clauses()
        for expression in (facts.expressions_compared_with_user() if user else facts.set_expressions)
    }
    return next(iter(found)) if len(found) == 1 else None


def find_tenant_key(rel: Relation, config: SweepConfig | None = None) -> TenantKey | None:
    """``[tool.rlscheck.tables."schema.table"]``, else the project's ``tenant_column``, else the
    first usual column name the relation has, else its owner column (a per-user table), else
    the one expression over the row its policies compare with the user (a storage path's
    first folder) or with a set of tenants."""
    config = config or SweepConfig()
    table = config.table(rel.qualified)
    if table.tenant_column or table.tenant_sql:
        return configured_key(rel, table.tenant_column, table.tenant_sql)
    present = [n for n in _tenant_names(config) if rel.column(n)]
    owner = owner_column(rel)
    if present:  # several usual names (account_id, workspace_id): the one the policies filter on
        filtered = {
            c
            for policy in rel.policies
            for _, _, facts in policy.clauses()
            for c in (*facts.filter_columns(), *(col for call in facts.calls for col in call.row_columns))
        }
        return TenantKey(next((n for n in present if n in filtered), present[0]))
    if owner is not None:
        return TenantKey(owner, per_user=True)
    expression = policy_expression(rel, user=True)
    if expression is not None:
        return TenantKey(expression=expression, per_user=True)
    expression = policy_expression(rel, user=False)
    return TenantKey(expression=expression) if expression is not None else None


def _tenant_names(config: SweepConfig) -> list[str]:
    return [config.tenant_column] if config.tenant_column else list(TENANT_COLUMN_GUESSES)


def tenant_key(
    rel: Relation,
    tenant_column: str | None,
    tenant_sql: str | None,
    config: SweepConfig | None = None,
) -> TenantKey:
    """The explicit argument, else :func:`find_tenant_key`; an error when there is none."""
    if tenant_column or tenant_sql:
        key = configured_key(rel, tenant_column, tenant_sql)
    else:
        found = find_tenant_key(rel, config)
        if found is None:
            raise RlsAssertionError(
                f"{rel.qualified}: cannot tell which tenant a row belongs to — it has none of the columns "
                f"{', '.join(_tenant_names(config or SweepConfig()))}. Pass tenant_column='…', or tenant_sql='(select p.org_id "
                "from parent p where p.id = parent_id)' for a table whose tenant comes through a parent."
            )
        key = found
    if key.column and not rel.column(key.column):
        raise RlsAssertionError(f"{rel.qualified} has no column {key.column!r} (its columns: {', '.join(c.name for c in rel.columns)})")
    return key


def updatable_column(rel: Relation) -> str:
    """A column ``SET c = c`` can name: not generated, not an identity column."""
    columns = [c for c in rel.columns if not c.generated and not c.identity]
    preferred = [c for c in columns if c.name in rel.primary_key] or columns
    return (preferred or list(rel.columns))[0].name


def example_policy_condition(key: TenantKey) -> str:
    column = key.column or "tenant_id"
    if key.per_user:
        return f"{column} = (SELECT auth.uid())"
    return (
        f"{column} IN (SELECT m.{column} FROM memberships m WHERE m.user_id = (SELECT auth.uid())) "
        "(memberships: your user-to-tenant table)"
    )
