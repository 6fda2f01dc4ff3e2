"""tenant-escalation: a user who writes their own id into a table the policies consult for
authorization (a membership table) joins another tenant or promotes themselves.

The tables come from the policy model (the range tables of policy subqueries, the tables
the functions they call read); the writes are measured, as each principal, by
:mod:`pytest_rlscheck.escalation`: a write is a finding when, in the same rolled-back
savepoint, the user then sees (or, for a promotion, can update or delete) rows they could
not reach before."""

from __future__ import annotations

from typing import Any

import psycopg
from psycopg import sql

from ..authorization import AuthorizationTable, authorization_tables
from ..catalog import Catalog
from ..escalation import Attempt, escalation_attempts, shown
from ..findings import Finding, Severity
from . import Measurement, SweepContext, dynamic_rule, ref
from .tenant_leak import pair

RULE = "tenant-escalation"
_CACHE: dict[int, tuple[Catalog, dict[int, AuthorizationTable]]] = {}  # the last catalog's tables


def membership_tables(ctx: SweepContext) -> dict[int, AuthorizationTable]:
    """The sweep's membership tables, computed once per catalog."""
    cached = _CACHE.get(id(ctx.catalog))
    if cached is None or cached[0] is not ctx.catalog:
        _CACHE.clear()
        cached = _CACHE[id(ctx.catalog)] = (ctx.catalog, authorization_tables(ctx.catalog, ctx.tables(), ctx.config))
    return cached[1]


def _applies(ctx: SweepContext, kind: str, obj: Any) -> bool:
    return obj.oid in membership_tables(ctx)


@dynamic_rule(RULE, Severity.ERROR, "table", "a user joins another tenant or promotes themselves through a membership table",
              applies=_applies)
def run(m: Measurement) -> tuple[list[Finding], dict[str, Any]]:
    table = membership_tables(m.ctx).get(m.check.oid)
    users = pair(list(m.principals))
    if table is None or users is None:
        return [], {"escalation": "not measured"}
    found: dict[str, tuple[Any, list[Attempt]]] = {}
    for user, other in (users, users[::-1]):
        commands = [c for c in ("INSERT", "UPDATE") if c not in found]  # one user proves it
        if not commands:
            break
        try:
            attempts = escalation_attempts(m.rls, table, user, other, commands=commands)
        except psycopg.Error as exc:
            return [Finding(RULE, Severity.WARN, ref(table.relation), f"Escalation could not be checked: {exc}")], {}
        for command in ("INSERT", "UPDATE"):
            gained = [a for a in attempts if a.command == command and a.gains]
            if gained and command not in found:
                found[command] = (user, gained)
    findings = [_finding(table, command, user, gained) for command, (user, gained) in found.items()]
    return findings, {"escalation": "LEAK" if findings else "verified"}


def _finding(table: AuthorizationTable, command: str, user: Any, gained: list[Attempt]) -> Finding:
    rel = table.relation
    first = gained[0]
    what = {"join": "joined another tenant", "move": "moved their membership into another tenant",
            "promote": "changed their own role"}[first.kind]
    message = (
        f"Acting as {user.sub} (tenant {user.tenant}), `{shown(first.statement)}` was accepted: the user {what} and then "
        + "; ".join(str(g) for g in first.gains)
        + f". The policies of {', '.join(d.qualified for d in table.dependents)} read {rel.qualified} to decide "
        "who belongs to a tenant, so whoever can write their own id there gets in."
    )
    quoted = rel.shown
    user_col = sql.Identifier(table.user_column).as_string(None)
    tenant_col = sql.Identifier(table.tenant_column).as_string(None)
    own_tenant = sql.Identifier(rel.name, table.tenant_column).as_string(None)
    if command == "INSERT":
        fix = (
            f"Let users insert into {quoted} only where they hold an invitation or are already an admin, in the "
            f"INSERT policy's WITH CHECK, e.g.\n  with check ({user_col} = (select auth.uid()) and exists (select 1 from "
            f"invitations i where i.{tenant_col} = {own_tenant} and i.{user_col} = (select auth.uid())))\n"
            f"or leave memberships to the backend: REVOKE INSERT ON {quoted} FROM anon, authenticated;"
        )
    else:
        columns = ", ".join(sql.Identifier(c).as_string(None) for c in (table.tenant_column, *table.role_columns))
        fix = (
            f"Do not let users change their own role or tenant: REVOKE UPDATE ({columns}) ON {quoted} FROM anon, "
            f"authenticated; (grant UPDATE on the columns they may change), or pin them in the UPDATE policy's WITH "
            "CHECK (an admin of the tenant changes roles, not the member themselves)."
        )
    return Finding(RULE, Severity.ERROR, ref(rel), message, fix,
                   details={"command": command, "user": user.sub, "statements": [shown(a.statement) for a in gained]})
