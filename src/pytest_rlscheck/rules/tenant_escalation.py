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
#: The columns ``role`` may update (table-level UPDATE covers them all), in table order.
UPDATABLE_SQL = """
select a.attname from pg_attribute a
where a.attrelid = %s and a.attnum > 0 and not a.attisdropped and a.attgenerated = '' and a.attidentity = ''
  and has_column_privilege(%s, a.attrelid, a.attnum, 'UPDATE')
order by a.attnum
"""
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
            return [Finding(RULE, Severity.INFO, ref(table.relation), f"Escalation not verified: the check failed: {exc}")], {}
        for command in ("INSERT", "UPDATE"):
            gained = [a for a in attempts if a.command == command and a.gains]
            if gained and command not in found:
                found[command] = (user, gained)
    findings = [_finding(table, command, user, gained, _updatable(m, table, user) if command == "UPDATE" else ())
                for command, (user, gained) in found.items()]
    return findings, {"escalation": "LEAK" if findings else "verified"}


def _updatable(m: Measurement, table: AuthorizationTable, user: Any) -> tuple[str, tuple[str, ...]]:
    """The role the user acts as, and the columns it may update."""
    identity = m.rls.identity_for(user)
    role = identity.role if identity is not None else "authenticated"
    try:
        rows = m.rls.owner_fetchall(UPDATABLE_SQL, [table.relation.oid, role])
    except psycopg.Error:
        rows = [(c.name,) for c in table.relation.columns if not c.generated and not c.identity]
    return role, tuple(r[0] for r in rows)


def _finding(table: AuthorizationTable, command: str, user: Any, gained: list[Attempt],
             updatable: tuple[str, tuple[str, ...]] | tuple[()] = ()) -> Finding:
    rel = table.relation
    first = gained[0]
    what = {"join": "joined another tenant", "move": "moved their membership into another tenant",
            "promote": "changed their own role"}[first.kind]
    who = {"join": "Any signed-in user can join another tenant", "move": "Any member can move into another tenant",
           "promote": "Any member can raise their own role"}[first.kind]
    start = f" (a member whose {first.start}, set for the probe)" if first.start else ""
    message = (
        f"{who} through {rel.qualified}. Acting as {user.sub} (tenant {user.tenant}){start}, "
        f"`{shown(first.statement)}` was accepted: the user {what} and then "
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
            f"-- leave memberships to the backend (or to a function that checks an invitation):\n"
            f"REVOKE INSERT ON {quoted} FROM anon, authenticated;\n"
            f"-- or let users insert into {quoted} only where they hold an invitation or are already an admin, in the "
            f"INSERT policy's WITH CHECK: {user_col} = (SELECT auth.uid()) AND EXISTS (SELECT 1 FROM the invitations "
            f"table AS i WHERE i.{tenant_col} = {own_tenant} AND i.{user_col} = (SELECT auth.uid()))"
        )
    else:
        role, columns = updatable or ("authenticated", tuple(c.name for c in rel.columns))
        pinned = (table.tenant_column, table.user_column, *table.role_columns)
        others = [c for c in columns if c not in pinned]
        pinned_shown = ", ".join(sql.Identifier(c).as_string(None) for c in pinned)
        grantees = ", ".join(dict.fromkeys(sql.Identifier(r).as_string(None) for r in ("anon", "authenticated", role)))
        grant = (
            f"GRANT UPDATE ({', '.join(sql.Identifier(c).as_string(None) for c in others)}) ON {quoted} TO "
            f"{sql.Identifier(role).as_string(None)};" if others
            else f"-- no other column is left for users to update: {quoted} is changed by the backend (or an admin function) only"
        )
        fix = (
            f"-- Do not let users change their own tenant or role ({pinned_shown}): take UPDATE back and grant it on "
            f"the other columns only:\nREVOKE UPDATE ON {quoted} FROM {grantees};\n{grant}\n"
            f"-- A column-level REVOKE UPDATE ({pinned_shown}) does nothing while the table-level UPDATE privilege is "
            "held (Supabase grants it to authenticated). Or keep the grant and pin them in the UPDATE policy's "
            f"WITH CHECK: the row after the update keeps its {sql.Identifier(table.tenant_column).as_string(None)} "
            "and role (an admin of the tenant changes roles, not the member themselves)."
        )
    return Finding(RULE, Severity.ERROR, ref(rel), message, fix,
                   details={"command": command, "user": user.sub, "statements": [shown(a.statement) for a in gained]})
