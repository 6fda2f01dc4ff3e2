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
    "PolicyKeys",
    "TenantKey",
    "configured_key",
    "example_policy_condition",
    "find_tenant_key",
    "keyed_by_itself",
    "personal_columns",
    "membership_tenant",
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


#: Schemas whose functions are not a project's membership helpers (``storage.foldername(name)``).
_NOT_HELPERS = ("pg_catalog", "storage", "auth", "extensions", "information_schema")


_ID_TYPES = ("uuid", "integer", "bigint", "smallint")


def _id_like(rel: Relation, name: str) -> bool:
    """A column that can hold a tenant's id: a uuid or integer, or one named for an id. A
    helper passed a file name or a title (``non_private_exists(name)``) checks something
    else about the row."""
    column = rel.column(name)
    return column is not None and (column.type in _ID_TYPES or name.lower().endswith("id"))


@dataclass(frozen=True)
class PolicyKeys:
    """The keys a relation's policies use, with their weight (a policy for SELECT counts 2,
    another 1): ``tenants``, the columns tested against the caller's set of tenants (``org_id
    IN (select ...)``, ``org_id = ANY (...)``) or passed to a membership helper
    (``private.is_member(org_id)``); ``users``, the columns compared with the caller's user
    id. Read from the SELECT policies (SELECT or ALL) when they use any: which rows a
    principal sees is what isolation is about; else from all of them."""

    tenants: dict[str, int]
    users: dict[str, int]

    @classmethod
    def of(cls, rel: Relation) -> PolicyKeys:
        primary = set(rel.primary_key) if len(rel.primary_key) == 1 else set()
        read, other = cls({}, {}), cls({}, {})
        for policy in rel.policies:
            tenants: set[str] = set()
            users: set[str] = set()
            for _, _, facts in policy.clauses():
                users |= facts.compared_with_user()
                tenants |= facts.set_columns
                tenants |= {c for call in facts.calls if call.function.partition(".")[0] not in _NOT_HELPERS
                            for c in call.row_columns if _id_like(rel, c)}
            # a row's own id in a set or passed to a helper (shared with, can see) is no tenant;
            # a tenant root's id is its tenant, which synthesis infers (``ctx.inferred_keys``)
            tenants -= primary
            weight = 2 if policy.covers("SELECT") else 1
            for target in ((read,) if weight == 2 else ()) + (other,):
                for column in tenants:
                    target.tenants[column] = target.tenants.get(column, 0) + weight
                for column in users:
                    target.users[column] = target.users.get(column, 0) + weight
        return read if read.tenants or read.users else other


def _best(votes: dict[str, int], names: list[str]) -> str | None:
    """The column most policies use; between equals, the first of ``names`` (the usual tenant
    names); None when that still leaves several."""
    if not votes:
        return None
    top = max(votes.values())
    tied = [c for c, v in votes.items() if v == top]
    if len(tied) == 1:
        return tied[0]
    return next((n for n in names if n in tied), None)


def membership_tenant(rel: Relation, user: str, names: list[str]) -> str | None:
    """The tenant column of a membership table: one whose rows pair a user with a tenant (the
    user column and one other column make a unique key, ``primary key (organization_id,
    user_id)``), the other column a usual tenant name or a foreign key. Its policies compare
    the user column with the caller (each member sees their memberships), but a row is the
    tenant's: who may add, promote or move members is a question about the tenant."""
    referencing = {c for fk in rel.foreign_keys() if not fk.to_auth_users for c in fk.columns}
    for key in rel.unique_keys:
        others = [c for c in key if c != user]
        if user in key and len(others) == 1 and (others[0] in names or others[0] in referencing):
            return others[0]
    return None


def find_tenant_key(rel: Relation, config: SweepConfig | None = None) -> TenantKey | None:
    """``[tool.rlscheck.tables."schema.table"]``, else the project's ``tenant_column`` where the
    relation has it; else the key the policies use (:class:`PolicyKeys`):
    a column they test against the caller's set of tenants or pass to a membership helper
    (the tenant, also when they compare another column with the user: that is an owner within
    the tenant), else the one column they compare with the caller's user id (a per-user
    table; a membership table's tenant column), the usual names (:data:`TENANT_COLUMN_GUESSES`)
    breaking ties between several; else, when the policies name no one key, the first usual
    name the relation has; else the one expression over the row the
    policies compare with the user (a storage path's first folder) or with a set of tenants."""
    config = config or SweepConfig()
    table = config.table(rel.qualified)
    if table.tenant_column or table.tenant_sql:
        return configured_key(rel, table.tenant_column, table.tenant_sql)
    if config.tenant_column and rel.column(config.tenant_column):
        return TenantKey(config.tenant_column)  # the project's own tenant column: configured, not guessed
    names = _tenant_names(config)
    used = PolicyKeys.of(rel)
    tenant = _best(used.tenants, list(TENANT_COLUMN_GUESSES))
    if tenant is not None:
        return TenantKey(tenant)
    # Several users (sender_id and recipient_id, created_by and assignee_id): a row belongs
    # to more than one user, and no single column says whose it is.
    owner = next(iter(used.users)) if len(used.users) == 1 else None
    if owner is not None and not used.tenants:
        member = membership_tenant(rel, owner, list(TENANT_COLUMN_GUESSES))
        return TenantKey(member) if member is not None else TenantKey(owner, per_user=True)
    present = [n for n in names if rel.column(n)]
    if present:
        return TenantKey(present[0])
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


def keyed_by_itself(rel: Relation, key: TenantKey | None) -> bool:
    """The tenant root: its tenant key is its own primary key, which points at nothing (or at
    the user the tenant is: a personal account keyed by its user's id), so a new row is a new
    tenant. A row keyed by a tenant root's key (billing per organization) is a row per tenant
    instead, and a per-user row keyed by its user (a profile) one another user may forge."""
    column = key.column if key is not None else None
    return bool(column) and not key.per_user and rel.primary_key == (column,) and not any(  # type: ignore[union-attr]
        column in fk.columns and not fk.to_auth_users for fk in rel.foreign_keys())


def personal_columns(rel: Relation) -> list[str]:
    """Columns of personal contact data (an email, a phone number)."""
    return [c.name for c in rel.columns if any(w in c.name.lower() for w in ("email", "phone"))]


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
