"""tenant-leak: with two principals in different tenants and the seed data, every RLS
table is put through the isolation checks and every view and set-returning function the
API roles can read through the foreign-rows check.

A table without a tenant column whose policies compare a column with ``auth.uid()`` is a
per-user table: its writes are checked between the two principals by that column, its reads
are not (other users' rows are often readable by design)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from itertools import permutations
from typing import TYPE_CHECKING, Any

import psycopg
from psycopg import sql

from .. import access
from ..access import Cell, RelationAccess
from ..catalog import Function, Relation
from ..config import SweepConfig
from ..errors import RlsAssertionError
from ..findings import Finding, ObjectRef, Severity
from ..impersonation import Principal
from ..isolation import (
    ALL_OPS,
    COMMANDS,
    ANON_OPS,
    FAMILIES,
    SAFEUPDATE_NOTE,
    TENANT_COLUMN_GUESSES,
    NothingToTest,
    Outcome,
    TenantKey,
    anon_applies,
    anon_outcomes,
    anon_reads,
    assert_no_foreign_rows,
    isolation_outcomes,
)
from ..remedies import isolation_fix, read_fix
from . import API_ROLES, Measurement, SweepContext, dynamic_rule, ref
from .function_calls import id_parameters, leaky_calls

if TYPE_CHECKING:
    from ..protocol import RlsProtocol as Rls

RULE = "tenant-leak"
#: Schemas of the platform's tables the project writes policies for, written by its own APIs
PLATFORM_SCHEMAS = ("storage",)


def applies(ctx: SweepContext, kind: str, obj: Any) -> bool:
    """Tables, views, and every function the API can call (``/rpc``): the set-returning ones
    without arguments are read, those that take a user or tenant id are called with the other
    tenant's; the rest get their row of the access matrix from their EXECUTE grant."""
    return kind != "function" or (obj.returns_set and not obj.argument_types) or bool(id_parameters(ctx, obj)) \
        or api_callable(obj)


def api_callable(fn: Function) -> bool:
    """Executable by anon or authenticated (or PUBLIC), and not a trigger's function."""
    return any(fn.executable(role) for role in API_ROLES) and fn.result not in ("trigger", "event_trigger")


@dynamic_rule(RULE, Severity.ERROR, "table", "a user reaches another tenant's rows", also=("view", "function", "platform-table"),
              applies=applies, table_columns=lambda facts: {"isolation": facts.get("isolation")})
def run(m: Measurement) -> tuple[list[Finding], dict[str, Any]]:
    return measured(m)


def measured(m: Measurement) -> tuple[list[Finding], dict[str, Any]]:
    """The isolation check of one object, with its row of the access matrix (``facts["access"]``,
    read off the same outcomes: :mod:`..access`). Kept for the sweep: access-changed reads the
    object's row from the same measurement, so that the matrix costs no probe."""
    key = f"{RULE}:{m.check.object.display}"
    if key not in m.memo:
        m.memo[key] = _measure(m)
    findings, facts = m.memo[key]
    return list(findings), dict(facts)


#: Whether each API role bypasses RLS (service_role does on Supabase): read once per sweep.
BYPASS_SQL = """
select rolname, rolsuper or rolbypassrls from pg_roles where rolname = any(%(roles)s)
"""


def matrix_principals(m: Measurement) -> tuple[list[tuple[str, str]], dict[str, bool]]:
    """The matrix's principals, (name, role): the users, anon, service_role (where those
    roles exist); and which roles bypass RLS."""
    if "access:roles" not in m.memo:
        rows = m.rls.connection.execute(BYPASS_SQL, {"roles": ["anon", "service_role", "authenticated"]}).fetchall()
        m.memo["access:roles"] = {str(name): bool(bypass) for name, bypass in rows}
    roles: dict[str, bool] = m.memo["access:roles"]
    names = {**principal_names(m.ctx.config), **m.ctx.names}
    who = [(names.get(str(p.sub), str(p.sub)), p.role) for p in m.principals]
    who += [(role, role) for role in ("anon", "service_role") if role in roles]
    return who, roles


def _measure(m: Measurement) -> tuple[list[Finding], dict[str, Any]]:
    principals = list(m.principals)
    who, bypasses = matrix_principals(m)
    cells: dict[str, Any] = {}  # what the probes got, by principal's name
    if m.check.kind in ("table", "platform-table"):
        rel = m.ctx.catalog.relation(m.check.oid)
        if not rel.rls_enabled:
            findings, status = [], "RLS off"
        else:
            findings, status = check_table(m.rls, m.ctx, rel, principals, record=cells)
        row = table_access(m.check.object.display, rel, m.ctx.tenant_key(rel), who, bypasses, cells, status)
    elif m.check.kind == "view":
        view = m.ctx.catalog.relation(m.check.oid)
        findings, status = check_view(m.rls, m.ctx, view, principals, record=cells)
        row = view_access(m.check.object.display, view, who, bypasses, cells, status)
    else:
        fn = next(f for f in m.ctx.catalog.functions if f.oid == m.check.oid)
        if fn.argument_types and id_parameters(m.ctx, fn):  # called with the other tenant's ids
            findings, status = leaky_calls(m.rls, m.ctx, fn, principals, m.memo, RULE, record=cells)
        elif fn.returns_set and not fn.argument_types:
            findings, status = check_function(m.rls, m.ctx, fn, principals, record=cells)
        else:
            findings, status = [], "not measured (no ids to call it with)"
        row = access.function_access(m.check.object.display, fn, who, bypasses=bypasses, measured=cells)
    return findings, {"isolation": status, "access": row.to_dict()}


def table_access(name: str, rel: Relation, key: TenantKey | None, who: Sequence[tuple[str, str]],
                 bypasses: dict[str, bool], runs: dict[str, Any], status: str) -> RelationAccess:
    """A table's row of the matrix: each operation from the outcomes of its shapes where the
    principal was tried, else read from the grants and policies (why not tried: ``status``,
    or what the run said)."""
    cells: dict[str, dict[str, Cell]] = {}
    for person, role in who:
        tenant = key is not None and role != "anon"  # anon has no rows of its own: what it reaches is allowed
        outcomes = runs.get(person)
        tried = isinstance(outcomes, list)
        why = runs.get(f"why:{person}", status)
        row: dict[str, Cell] = {}
        for op in access.TABLE_OPERATIONS:
            shapes = [o for o in outcomes if FAMILIES[o.op] == op] if tried else []
            if bypasses.get(role):
                row[op] = access.infer_cell(rel, role, op, bypasses=True, tenant=tenant, why="not tried")
            elif shapes:
                row[op] = access.measured_cell(rel, role, op, shapes, tenant=tenant)
            elif tried and op == "move" and role == "anon":
                row[op] = Cell(access.NA, "yes", "anon has no row of its own to move (the move without a WHERE is "
                               "under update)")
            elif tried and op == "select" and key is not None and key.per_user:
                row[op] = access.infer_cell(rel, role, op, tenant=tenant, why="the reads of a per-user table are not judged")
            else:
                row[op] = access.infer_cell(rel, role, op, tenant=tenant, why=why)
        cells[person] = row
    return RelationAccess(name, "table", cells)


def view_access(name: str, view: Relation, who: Sequence[tuple[str, str]], bypasses: dict[str, bool],
                measured: dict[str, Any], status: str) -> RelationAccess:
    """A view's row: select, as the foreign-rows check read it, else from its grant and
    whose rights it runs with."""
    cells: dict[str, dict[str, Cell]] = {}
    for person, role in who:
        cell = measured.get(person)
        if not isinstance(cell, Cell):
            cell = _view_inferred(view, role, bypasses.get(role, False), status)
        cells[person] = {"select": cell}
    return RelationAccess(name, "view", cells)


def _view_inferred(view: Relation, role: str, bypasses: bool, status: str) -> Cell:
    detail = f"not measured ({status}): read from its grant"
    if not view.granted(role, "SELECT"):
        return Cell(access.PRIVILEGE, "no", f"{detail}: {role} has no SELECT privilege")
    if bypasses:
        return Cell(access.ALL, "no", f"{detail}: {role} bypasses RLS")
    if not view.security_invoker and view.owner_bypasses_rls:
        return Cell(access.ALL, "no", f"{detail}: it runs with its owner's rights ({view.owner}, who bypasses RLS)")
    return Cell(access.ALLOWED, "no", f"{detail}: what the policies of the tables under it let through")


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
PRINCIPALS_HINT = (
    " To have it verified, add two users of different tenants from your seed data, each as a "
    "[tool.rlscheck.principals.NAME] table with their auth.users id as sub and their tenant id as tenant."
)


def not_verified(obj: ObjectRef, status: str, table: str | None = None) -> list[Finding]:
    """An info finding that says why isolation was not checked: a pass would claim too much."""
    if status == "no principals":
        return [Finding(RULE, Severity.INFO, obj, NO_PRINCIPALS + PRINCIPALS_HINT)]
    where = f'[tool.rlscheck.tables."{table or obj}"]'
    return [
        Finding(
            RULE,
            Severity.INFO,
            obj,
            "Isolation not verified: no tenant key — no tenant column is configured or guessed for it "
            f"({', '.join(TENANT_COLUMN_GUESSES)}), its policies compare no one column (or expression over "
            "one) with auth.uid() or a set of tenants, and it is not the table the tenant columns point at. "
            "If its rows are shared by every tenant (a catalogue), ignore this. Otherwise name its tenant in "
            f"the configuration: {where} with tenant_column (a column) or tenant_sql (an expression over the row).",
        )
    ]


#: storage.objects in private buckets: whose they are (in public buckets, anyone's to read by URL)
PRIVATE_OBJECT = (
    "case when exists (select 1 from storage.buckets b where b.id = t.bucket_id and b.public) then null else {} end"
)


def private_objects(rls: Rls, rel: Relation, key: TenantKey) -> TenantKey | None:
    """For storage.objects: the key of the objects of private buckets, whose reads by another
    user (or tenant, or anon) are a leak. A public bucket's files are anyone's to read by URL
    (that is what public means), so its objects are nobody's by this key: reads of them are
    not judged (a per-user table's reads are otherwise not judged at all)."""
    if rel.qualified != "storage.objects":
        return None
    owner = key.sql().as_string(rls.connection)
    return TenantKey(expression=PRIVATE_OBJECT.format(owner), per_user=key.per_user)


def ops_for(key: TenantKey, *, anon: bool = False) -> tuple[str, ...]:
    """The operations to try. On a per-user table reading other users' rows is often the
    design (public profiles, a shared catalogue); writing them never is. Anon has no row of
    its own to move (its unfiltered move tries every row its policies admit)."""
    ops = ANON_OPS if anon else ALL_OPS
    return tuple(op for op in ops if op != "select") if key.per_user else ops


def principal_names(config: SweepConfig) -> dict[str, str]:
    """A principal's name in the config (``alice``) by its sub, for verdicts."""
    return {str(p.sub): name for name, p in config.principals.items()}


def check_table(rls: Rls, ctx: SweepContext, rel: Relation, principals: list[Principal],
                record: dict[str, Any] | None = None) -> tuple[list[Finding], str]:
    """``record``: filled with each principal's outcomes by name (``why:<name>`` when it was
    not tried), for the access matrix."""
    record = {} if record is None else record
    key = ctx.tenant_key(rel)
    if rel.rls_enabled and not rel.policies:  # PostgreSQL refuses the API every row: nothing to measure
        return [], "deny-all (no policy)"
    # a table the API is granted nothing on is still measured (refused), but needs no note
    reachable = bool(ctx.api_privileges(rel))
    if key is None:
        return not_verified(ref(rel), "no tenant column") if reachable else [], "no tenant column"
    users = pair(principals, per_user=key.per_user)
    if users is None:
        return not_verified(ref(rel), "no principals") if reachable else [], "no principals"
    names = {**principal_names(ctx.config), **ctx.names}
    findings: list[Finding] = []
    runs: list[tuple[str, list[Outcome]]] = []  # who acted, and what came of it
    empty: list[str] = []
    private = private_objects(rls, rel, key)
    for user, other in (users, users[::-1]):
        try:
            outcomes, theirs = isolation_outcomes(rls, rel, key, user, other,
                                                  [op for op in ops_for(key) if private is None or op != "select"])
        except NothingToTest:
            empty.append(names.get(str(user.sub), str(user.sub)))
            record[f"why:{empty[-1]}"] = "no rows of the other tenant to try it on"
            continue
        except (RlsAssertionError, psycopg.Error) as exc:
            findings.append(Finding(RULE, Severity.INFO, ref(rel), f"Isolation not verified: the check failed: {exc}"))
            record[f"why:{names.get(str(user.sub), str(user.sub))}"] = "the check failed"
            continue
        if private is not None:  # another user's files in a private bucket: their reads are judged
            try:
                read, _ = isolation_outcomes(rls, rel, private, user, other, ("select",))
                outcomes = [*read, *outcomes]
            except NothingToTest:
                pass  # no object of theirs in a private bucket
            except (RlsAssertionError, psycopg.Error) as exc:
                findings.append(Finding(RULE, Severity.INFO, ref(rel), f"Reads of private objects not verified: the check failed: {exc}"))
        name = names.get(str(user.sub), str(user.sub))
        runs.append((name, outcomes))
        record[name] = outcomes
        other_name = names.get(str(other.sub), str(other.sub))
        actor = f"As {name} (sub {user.sub}" + (")" if key.per_user else f", tenant {user.tenant})")
        victim = (f"{other_name}'s rows (by {key.describe()})" if key.per_user
                  else f"the rows of {other_name}'s tenant {theirs} (by {key.describe()})")
        findings += judged(rel, key, actor, victim, outcomes, ctx.config.safeupdate,
                           {"user": user.sub, "other": other.sub})
    if anon_applies(rel):
        try:
            outcomes, _ = anon_outcomes(rls, rel, key, None,
                                        [op for op in ops_for(key, anon=True) if private is None or op != "select"])
            if private is not None:  # files of private buckets: anon must read none
                try:
                    read, _ = anon_outcomes(rls, rel, private, None, ("select",))
                    outcomes = [*read, *outcomes]
                except NothingToTest:
                    pass  # no object in a private bucket
        except NothingToTest:
            pass  # the principals' runs say so
        except (RlsAssertionError, psycopg.Error) as exc:
            findings.append(Finding(RULE, Severity.INFO, ref(rel), f"Isolation from anon not verified: the check failed: {exc}"))
        else:
            runs.append(("anon", outcomes))
            record["anon"] = outcomes
            whose = "users'" if key.per_user else "tenants'"
            findings += judged(rel, key, "As anon (the anon key)", f"{whose} rows (by {key.describe()})", outcomes,
                               ctx.config.safeupdate, {"user": "anon"})
    if not findings and empty and not [name for name, _ in runs if name != "anon"]:
        findings.append(
            Finding(
                RULE,
                Severity.INFO,
                ref(rel),
                "Isolation not verified: the seed data has no rows of "
                + " or ".join(str(u.sub if key.per_user else u.tenant) for u in users)
                + f" (by {key.describe()}) to try it on"
                + (f", and none could be synthesized: {ctx.unmade[rel.qualified]}." if rel.qualified in ctx.unmade else ".")
                + " Seed a few rows for the principals' tenants to have it verified.",
            )
        )
        return findings, "no data"
    return [_refixed(ctx, rel, key, f) for f in merged(findings)], verdict(findings, runs, empty, key)


def _refixed(ctx: SweepContext, rel: Relation, key: TenantKey, finding: Finding) -> Finding:
    """A leak's fix, for every run merged into it: the policies of the leaking commands that
    do not limit the tenant key, with the schema's condition (:mod:`..remedies`)."""
    if finding.severity is Severity.INFO or not finding.details.get("ops"):
        return finding
    ops = finding.details["ops"]
    users = [str(u) for u in finding.details.get("users", [finding.details.get("user")])]
    fix = isolation_fix(ctx, rel, key, [FAMILIES[o] for o in ops], anon="anon" in users,
                        unfiltered=any(o.endswith("_unfiltered") for o in ops))
    commands = {c for o in ops for c in COMMANDS.get(o, ())}
    fixed = [p.name for p in rel.policies if any(p.covers(c) for c in commands)]
    return replace(finding, fix=fix, details={**finding.details, "fixed_policies": fixed})


def merged(findings: list[Finding]) -> list[Finding]:
    """One finding per severity: the runs of both users (and anon) on one table are one
    fact about it, said once with each run's evidence."""
    out: list[Finding] = []
    for severity in sorted({f.severity for f in findings}, reverse=True):
        same = [f for f in findings if f.severity is severity]
        if len(same) == 1:
            out.append(same[0])
            continue
        first = same[0]
        ops = list(dict.fromkeys(op for f in same for op in f.details.get("ops", ())))
        users = [str(f.details["user"]) for f in same if "user" in f.details]
        heads = [f.message.split(". ", 1) for f in same]
        if all(len(h) == 2 and h[0] == heads[0][0] for h in heads):  # one "who can do what", then each run
            message = heads[0][0] + ".\n" + "\n".join(h[1] for h in heads)
        else:
            message = "\n".join(f.message for f in same)
        out.append(Finding(first.rule, severity, first.object, message, first.fix,
                           details={**first.details, "ops": ops, "users": users}))
    return out


def _who(details: dict[str, Any], key: TenantKey) -> str:
    if details.get("user") == "anon":
        return "Anon (anyone with the anon key)"
    return "Any signed-in user"


_WHAT = {"select": "read", "insert": "insert into", "update": "change", "delete": "delete", "move": "move rows into",
         "upsert": "overwrite (upsert)"}


def judged(rel: Relation, key: TenantKey, actor: str, victim: str, outcomes: list[Outcome], safeupdate: bool,
           details: dict[str, Any]) -> list[Finding]:
    """The findings of one run: a leak (an error; a warning when only the statements without a
    WHERE reach them and safeupdate refuses those through the API), or what was not proven."""
    leaks = [o for o in outcomes if o.isolated is False]
    unproven = [o for o in outcomes if o.isolated is None]
    if unproven and not leaks:  # not verified: info, never a failure of the run
        return [
            Finding(
                RULE,
                Severity.INFO,
                ref(rel),
                f"{actor}: isolation from {victim} not proven for "
                + "; ".join(f"{o.op} ({o.detail})" for o in unproven)
                + ". Seed rows the checks can use for both tenants to have it verified"
                + ("." if key.column else "; the move check needs a tenant column (or a foreign key) to set."),
                "",
                details={**details, "ops": [o.op for o in unproven]},
            )
        ]
    if not leaks:
        return []
    if rel.schema in PLATFORM_SCHEMAS and all(o.unfiltered for o in leaks):
        # storage.objects is written through the Storage API, which sends no UPDATE or DELETE
        # without a WHERE (and sets owner and path itself): no client can send these statements
        return [Finding(
            RULE, Severity.INFO, ref(rel),
            f"{actor}, only statements without a WHERE reached {victim} ("
            + "; ".join(f"{o.op}: {o.detail}" for o in leaks)
            + f"). {rel.schema} is not exposed through the API: its clients go through the platform's API, which "
            "sends none; not reachable today, but the UPDATE/DELETE policies are wider than the SELECT ones.",
            "", details={**details, "ops": [o.op for o in leaks]},
        )]
    latent = safeupdate and all(o.unfiltered for o in leaks)
    listing = "; ".join(f"{o.op}: {o.detail}" for o in leaks)
    whose = "other users'" if key.per_user else "other tenants'"
    can = (f"{_who(details, key)} can " + ", ".join(dict.fromkeys(_WHAT[FAMILIES[o.op]] for o in leaks))
           + f" {whose} rows of {rel.qualified}" + (" (latent)" if latent else "") + ". ")
    if latent:
        message = (f"{actor}, {len(leaks)} statement(s) without a WHERE reached {victim}: {listing}. Latent: "
                   f"{SAFEUPDATE_NOTE}.")
    else:
        message = f"{actor}, {len(leaks)} operation(s) reached {victim}: {listing}" + (
            " (safeupdate = false: the API runs statements without a WHERE)"
            if not safeupdate and any(o.unfiltered for o in leaks) else "")
    return [Finding(RULE, Severity.WARN if latent else Severity.ERROR, ref(rel), can + message, "",  # fixed by _refixed
                    details={**details, "ops": [o.op for o in leaks]})]


def _families(ops: Sequence[str]) -> list[str]:
    return list(dict.fromkeys(FAMILIES[op] for op in ops))


def verdict(findings: list[Finding], runs: list[tuple[str, list[Outcome]]], empty: list[str], key: TenantKey) -> str:
    """The summary's isolation column: what was proven, for whom — ``verified (select, insert,
    update, delete, move, upsert as alice/bob and anon)`` — or what leaked, or what was not tried."""
    def who(names: Sequence[str]) -> str:
        people = [n for n in dict.fromkeys(names) if n != "anon"]
        return "/".join(people) + (" and anon" if "anon" in names and people else "anon" if "anon" in names else "")

    def grouped(pairs: Sequence[tuple[str, str]]) -> str:  # (what, who) -> "update, move as alice/bob; select as anon"
        by_who: dict[str, list[str]] = {}
        for what, name in pairs:
            by_who.setdefault(name, [])
            if what not in by_who[name]:
                by_who[name].append(what)
        by_whats: dict[tuple[str, ...], list[str]] = {}
        for name, whats in by_who.items():
            by_whats.setdefault(tuple(whats), []).append(name)
        return "; ".join(f"{', '.join(whats)} as {who(names)}" for whats, names in by_whats.items())

    leaks = [(o, name) for name, outcomes in runs for o in outcomes if o.isolated is False]
    if any(f.severity is Severity.ERROR for f in findings):
        return f"LEAK ({grouped([(FAMILIES[o.op], n) for o, n in leaks])})" if leaks else "LEAK"
    if leaks:  # only statements without a WHERE, refused by safeupdate through the API
        return f"latent leak ({grouped([(o.op, n) for o, n in leaks])})"
    unproven = [(o.op, name) for name, outcomes in runs for o in outcomes if o.isolated is None]
    if unproven:
        return f"not proven ({grouped(unproven)})"
    if findings:
        return "not proven"
    ran = [name for name, _ in runs]
    families = ", ".join(_families([o.op for _, outcomes in runs for o in outcomes]))
    if runs and not empty and len([n for n in ran if n != "anon"]) == 2:
        return f"verified ({families} as {who(ran)})"
    if runs and [n for n in ran if n != "anon"]:
        return f"partly verified ({families} as {who(ran)}; not as {'/'.join(empty)}: no rows of their tenant)"
    return "no data" if empty else "not checked"


def check_view(rls: Rls, ctx: SweepContext, view: Relation, principals: list[Principal],
               record: dict[str, Any] | None = None) -> tuple[list[Finding], str]:
    if "SELECT" not in ctx.api_privileges(view):
        return [], "not readable by the API"
    quoted = view.ident.as_string(rls.connection)
    fix = [] if view.security_invoker else [f"ALTER VIEW {view.shown} SET (security_invoker = true);  -- PostgreSQL 15+"]
    tables = [r for d in view.depends_on for r in ctx.catalog.relations if r.oid == d.oid]
    fix = [*read_fix(ctx, tables), *fix]
    anon_fix = "\n".join([*read_fix(ctx, tables), f"REVOKE SELECT ON {view.shown} FROM anon;"])
    return _foreign_rows(rls, quoted, ctx.tenant_key(view), principals, ref(view), anon=view.granted("anon", "SELECT"),
                         names={**principal_names(ctx.config), **ctx.names}, fix="\n".join(fix), anon_fix=anon_fix,
                         record=record)


def check_function(rls: Rls, ctx: SweepContext, fn: Function, principals: list[Principal],
                   record: dict[str, Any] | None = None) -> tuple[list[Finding], str]:
    if not fn.returns_set or fn.argument_types or not any(fn.executable(role) for role in API_ROLES):
        return [], "not applicable"
    returned = fn.result.removeprefix("SETOF ").strip()
    rel = next((r for r in ctx.catalog.relations if returned in (r.name, r.qualified)), None)
    key = ctx.tenant_key(rel) if rel is not None else None
    call = sql.SQL("{}()").format(sql.Identifier(fn.schema, fn.name)).as_string(rls.connection)
    fix = read_fix(ctx, [rel] if rel is not None else [])
    if fn.security_definer:
        fix.append(f"ALTER FUNCTION {fn.shown} SECURITY INVOKER;  -- what it reads then goes through RLS")
    anon_fix = f"REVOKE EXECUTE ON FUNCTION {fn.shown} FROM PUBLIC, anon;\nGRANT EXECUTE ON FUNCTION {fn.shown} TO authenticated;"
    fix.append(f"-- or, if the API must not call it: REVOKE EXECUTE ON FUNCTION {fn.shown} FROM PUBLIC, anon, authenticated;")
    return _foreign_rows(rls, call, key, principals, ref(fn), anon=fn.executable("anon"),
                         names={**principal_names(ctx.config), **ctx.names}, fix="\n".join(fix), anon_fix=anon_fix,
                         record=record)


def _foreign_rows(
    rls: Rls, relation: str, key: TenantKey | None, principals: list[Principal], name: ObjectRef, *, anon: bool = False,
    names: dict[str, str] | None = None, fix: str = "", anon_fix: str = "", record: dict[str, Any] | None = None,
) -> tuple[list[Finding], str]:
    """``record``: filled with a cell of the access matrix per principal tried, by name."""
    record = {} if record is None else record
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
        person = (names or {}).get(str(user.sub), str(user.sub))
        try:
            own = assert_no_foreign_rows(rls, relation, user=user, tenant_column=key.column)
            checked += 1
            record[person] = access.read_cell(own, False, None,
                                              f"read {own} row(s) of their own tenant, none of another's")
        except NothingToTest:
            continue
        except RlsAssertionError as exc:
            leaks.append((user.sub, exc))
            record[person] = access.read_cell(None, True, None, exc.headline)
        except psycopg.Error as exc:
            errors.append(f"as {user.sub}: {exc.sqlstate}: {exc.diag.message_primary}")
            refused = exc.sqlstate == "42501"
            record[person] = access.read_cell(None, False, None if refused else errors[-1],
                                              f"refused: {exc.diag.message_primary}")
    read_by_anon = 0
    if anon:  # the anon key: any tenant's row is foreign to it
        try:
            read_by_anon = anon_reads(rls, relation, key)
            record["anon"] = access.read_cell(None, bool(read_by_anon), None,
                                              f"anon reads {read_by_anon} row(s) of tenants")
        except psycopg.Error as exc:
            errors.append(f"as anon: {exc.sqlstate}: {exc.diag.message_primary}")
            record["anon"] = access.read_cell(None, False, errors[-1], "")
    by_anon = f"anon (the anon key) reads {read_by_anon} rows of tenants (by {key.describe()}) from {name}"
    if leaks:  # one finding for the relation, whoever it leaked to
        first = leaks[0][1]
        return [Finding(RULE, Severity.ERROR, name, first.headline + (f" (and for {len(leaks) - 1} more user(s))" if len(leaks) > 1 else "")
                        + (f"; and {by_anon}" if read_by_anon else ""),
                        _explained(first.fix, (f"{anon_fix}\n" if read_by_anon else "") + fix),
                        details={"users": [u for u, _ in leaks] + (["anon"] if read_by_anon else [])})], "LEAK"
    if read_by_anon:
        return [Finding(RULE, Severity.ERROR, name, by_anon[0].upper() + by_anon[1:] + ".",
                        anon_fix,
                        details={"users": ["anon"]})], "LEAK (select as anon)"
    if errors:
        return [Finding(RULE, Severity.INFO, name, "Not verified: the check failed: " + "; ".join(errors))], "not proven"
    if not checked:
        return [], "no data"
    readers = "/".join((names or {}).get(str(p.sub), str(p.sub)) for p in principals if p.tenant)
    return [], f"verified (select as {readers}" + (" and anon)" if anon else ")")


def _explained(cause: str, fix: str) -> str:
    """The isolation check's cause (prose) as SQL comments, then the fix's SQL."""
    said = [line for line in cause.splitlines() if line.strip() and not line.startswith("Fix:")]
    lines = [*(f"-- {line}" for line in said), *(fix.splitlines() if fix else [])]
    return "\n".join(dict.fromkeys(lines))  # the reads' and anon's fixes may share policies


def principals_from(config: SweepConfig) -> list[Principal]:
    return [
        Principal(p.sub, None if p.tenant is None else str(p.tenant), p.role or "authenticated", p.claims_dict(), p.email)
        for p in config.principals.values()
    ]
