"""tenant-leak: with two principals in different tenants and the seed data, every RLS
table is put through the isolation checks and every view and set-returning function the
API roles can read through the foreign-rows check.

A table without a tenant column whose policies compare a column with ``auth.uid()`` is a
per-user table: its writes are checked between the two principals by that column, its reads
are not (other users' rows are often readable by design)."""

from __future__ import annotations

from itertools import permutations
from typing import TYPE_CHECKING, Any

import psycopg
from psycopg import sql

from ..catalog import Function, Relation
from ..config import SweepConfig
from ..errors import RlsAssertionError
from ..findings import Finding, ObjectRef, Severity
from ..impersonation import Principal
from ..isolation import ALL_OPS, TENANT_COLUMN_GUESSES, NothingToTest, TenantKey, assert_no_foreign_rows, isolation_outcomes
from . import API_ROLES, Measurement, SweepContext, dynamic_rule, ref
from .function_calls import id_parameters, leaky_calls

if TYPE_CHECKING:
    from ..protocol import RlsProtocol as Rls

RULE = "tenant-leak"


def _applies(ctx: SweepContext, kind: str, obj: Any) -> bool:
    """Views, the set-returning functions without arguments the API can call, and those that
    take a user or tenant id (called with the other tenant's)."""
    return kind != "function" or (obj.returns_set and not obj.argument_types) or bool(id_parameters(ctx, obj))


@dynamic_rule(RULE, Severity.ERROR, "table", "a user reaches another tenant's rows", also=("view", "function", "platform-table"),
              applies=_applies, table_columns=lambda facts: {"isolation": facts.get("isolation")})
def run(m: Measurement) -> tuple[list[Finding], dict[str, Any]]:
    principals = list(m.principals)
    if m.check.kind == "table":
        rel = m.ctx.catalog.relation(m.check.oid)
        if not rel.rls_enabled:
            return [], {"isolation": "RLS off"}
        findings, status = check_table(m.rls, m.ctx, rel, principals)
    elif m.check.kind == "view":
        findings, status = check_view(m.rls, m.ctx, m.ctx.catalog.relation(m.check.oid), principals)
    else:
        fn = next(f for f in m.ctx.catalog.functions if f.oid == m.check.oid)
        if fn.argument_types:  # called with the other tenant's ids
            findings, status = leaky_calls(m.rls, m.ctx, fn, principals, m.memo, RULE)
        else:
            findings, status = check_function(m.rls, m.ctx, fn, principals)
    return findings, {"isolation": status}


def pair(principals: list[Principal], *, per_user: bool = False) -> tuple[Principal, Principal] | None:
    """Two principals of different tenants (of different users, on a per-user table), or None."""
    for a, b in permutations(principals, 2):
        if per_user and str(a.sub) != str(b.sub):
            return a, b
        if a.tenant and b.tenant and str(a.tenant) != str(b.tenant):
            return a, b
    return None


NO_PRINCIPALS = (
    "Isolation not verified: no two principals of different tenants are configured, so no user was tried "
    "against another's rows."
)
PRINCIPALS_FIX = (
    "Add two users of different tenants from your seed data:\n[tool.rlscheck.principals.alice]\n"
    'sub = "<auth.users id>"\ntenant = "<their tenant id>"\n(and the same for a user of another tenant)'
)


def not_verified(obj: ObjectRef, status: str, table: str | None = None) -> list[Finding]:
    """An info finding that says why isolation was not checked: a pass would claim too much."""
    if status == "no principals":
        return [Finding(RULE, Severity.INFO, obj, NO_PRINCIPALS, PRINCIPALS_FIX)]
    where = f'[tool.rlscheck.tables."{table or obj}"]'
    return [
        Finding(
            RULE,
            Severity.INFO,
            obj,
            "Isolation not verified: no tenant column is configured or guessed for it "
            f"({', '.join(TENANT_COLUMN_GUESSES)}), nor one owner column its policies compare with auth.uid().",
            f'{where}\ntenant_column = "<column>"   # or tenant_sql = "(<expression over the row>)"',
        )
    ]


def ops_for(key: TenantKey) -> tuple[str, ...]:
    """The operations to try. On a per-user table reading other users' rows is often the
    design (public profiles, a shared catalogue); writing them never is."""
    return tuple(op for op in ALL_OPS if op != "select") if key.per_user else ALL_OPS


def check_table(rls: Rls, ctx: SweepContext, rel: Relation, principals: list[Principal]) -> tuple[list[Finding], str]:
    key = ctx.tenant_key(rel)
    users = pair(principals, per_user=key is not None and key.per_user)
    # a table the API cannot reach through any policy has nothing to verify
    reachable = bool(ctx.api_privileges(rel)) and (bool(rel.policies) or not rel.rls_enabled)
    if users is None:
        return not_verified(ref(rel), "no principals") if reachable else [], "no principals"
    if key is None:
        return not_verified(ref(rel), "no tenant column") if reachable else [], "no tenant column"
    findings: list[Finding] = []
    checked = 0
    empty = 0
    for user, other in (users, users[::-1]):
        try:
            outcomes, theirs = isolation_outcomes(rls, rel, key, user, other, ops_for(key))
        except NothingToTest:
            empty += 1
            continue
        except (RlsAssertionError, psycopg.Error) as exc:
            findings.append(Finding(RULE, Severity.WARN, ref(rel), f"Isolation could not be checked: {exc}"))
            continue
        checked += 1
        leaks = [o for o in outcomes if o.isolated is False]
        unproven = [o for o in outcomes if o.isolated is None]
        if unproven and not leaks:
            findings.append(
                Finding(
                    RULE,
                    Severity.WARN,
                    ref(rel),
                    f"Isolation of {user.sub} from {other.sub} not proven for "
                    + "; ".join(f"{o.op} ({o.detail})" for o in unproven),
                    "Seed rows the checks can use for both tenants"
                    + ("." if key.column else "; the move check needs a tenant column (or a foreign key) to set."),
                    details={"user": user.sub, "other": other.sub, "ops": [o.op for o in unproven]},
                )
            )
        if leaks:
            findings.append(
                Finding(
                    RULE,
                    Severity.ERROR,
                    ref(rel),
                    f"Acting as {user.sub}"
                    + ("" if key.per_user else f" (tenant {user.tenant})")
                    + f", {len(leaks)} operation(s) reached the rows of {other.sub} (tenant {theirs}, by "
                    f"{key.describe()}): "
                    + "; ".join(f"{o.op}: {o.detail}" for o in leaks),
                    f"Give {rel.qualified} a policy per command that limits {key.describe()} to "
                    + ("the user: (select auth.uid())" if key.per_user else "the user's tenants")
                    + " (USING, and WITH CHECK for INSERT/UPDATE).",
                    details={"user": user.sub, "other": other.sub, "ops": [o.op for o in leaks]},
                )
            )
    if any(f.severity is Severity.ERROR for f in findings):
        return findings, "LEAK"
    if findings:
        return findings, "not proven"
    if checked == 2:
        return findings, "verified"
    if not checked and empty:
        findings.append(
            Finding(
                RULE,
                Severity.INFO,
                ref(rel),
                "Isolation not verified: the seed data has no rows of "
                + " or ".join(str(u.sub if key.per_user else u.tenant) for u in users)
                + f" (by {key.describe()}) to try it on.",
                "Seed a few rows for the configured principals' tenants.",
            )
        )
        return findings, "no data"
    return findings, "partly verified" if checked else "not checked"


def check_view(rls: Rls, ctx: SweepContext, view: Relation, principals: list[Principal]) -> tuple[list[Finding], str]:
    if "SELECT" not in ctx.api_privileges(view):
        return [], "not readable by the API"
    quoted = view.ident.as_string(rls.connection)
    return _foreign_rows(rls, quoted, ctx.tenant_key(view), principals, ref(view))


def check_function(rls: Rls, ctx: SweepContext, fn: Function, principals: list[Principal]) -> tuple[list[Finding], str]:
    if not fn.returns_set or fn.argument_types or not set(fn.executable_by) & {*API_ROLES, "public"}:
        return [], "not applicable"
    returned = fn.result.removeprefix("SETOF ").strip()
    rel = next((r for r in ctx.catalog.relations if returned in (r.name, r.qualified)), None)
    key = ctx.tenant_key(rel) if rel is not None else None
    call = sql.SQL("{}()").format(sql.Identifier(fn.schema, fn.name)).as_string(rls.connection)
    return _foreign_rows(rls, call, key, principals, ref(fn))


def _foreign_rows(
    rls: Rls, relation: str, key: TenantKey | None, principals: list[Principal], name: ObjectRef
) -> tuple[list[Finding], str]:
    if not [p for p in principals if p.tenant]:
        return [], "no principals"  # the tables' items say so
    if key is None or not key.column:
        return [], "no tenant column"  # a view or function result without one: nothing to compare
    if key.per_user:
        return [], "per-user rows: reads not checked"  # other users' rows are often readable by design
    leaks: list[tuple[str, RlsAssertionError]] = []
    errors: list[str] = []
    checked = 0
    for user in (p for p in principals if p.tenant):
        try:
            assert_no_foreign_rows(rls, relation, user=user, tenant_column=key.column)
            checked += 1
        except NothingToTest:
            continue
        except RlsAssertionError as exc:
            leaks.append((user.sub, exc))
        except psycopg.Error as exc:
            errors.append(f"as {user.sub}: {exc.sqlstate}: {exc.diag.message_primary}")
    if leaks:  # one finding for the relation, whoever it leaked to
        first = leaks[0][1]
        return [Finding(RULE, Severity.ERROR, name, first.headline + (f" (and for {len(leaks) - 1} more user(s))" if len(leaks) > 1 else ""),
                        first.fix, details={"users": [u for u, _ in leaks]})], "LEAK"
    if errors:
        return [Finding(RULE, Severity.WARN, name, "Could not be checked: " + "; ".join(errors))], "not proven"
    return [], "verified" if checked else "no data"


def principals_from(config: SweepConfig) -> list[Principal]:
    return [
        Principal(p.sub, None if p.tenant is None else str(p.tenant), p.role or "authenticated", p.claims_dict(), p.email)
        for p in config.principals.values()
    ]
