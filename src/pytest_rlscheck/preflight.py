"""Checks of the sweep's inputs before it runs: is there anything to check, and can the
principals' tenants be values of the tenant columns they are compared with."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

from .catalog import Relation
from .catalog_sql import MANAGED_SCHEMAS
from .findings import ObjectRef
from .rules import tenant_leak
from .sweep import Check, Sweep

__all__ = ["POINT_AT_MIGRATIONS", "TenantMismatch", "mismatch_report", "nothing_to_check", "tenant_mismatches"]


# -- nothing to check ---------------------------------------------------------------------

OTHER_SCHEMAS_SQL = """
select n.nspname, count(*) from pg_class c join pg_namespace n on n.oid = c.relnamespace
where c.relkind in ('r', 'p', 'v', 'm') and n.nspname not like 'pg\\_%%' and n.nspname <> all(%(skip)s::text[])
group by 1 order by 1
"""

POINT_AT_MIGRATIONS = (
    "Point the plugin at your migrations: --rlscheck-migrations=PATH (a directory, a file or a glob; "
    "repeatable), or in pyproject.toml:\n"
    "    [tool.rlscheck]\n"
    '    migrations = ["path/to/migrations"]'
)


def nothing_to_check(sweep: Sweep) -> str:
    """Why the sweep has no item: the migrations it applied (or where it looked for them),
    the schemas it swept, and how to point it at the right ones."""
    settings = sweep.session.settings
    schemas = ", ".join(sweep.schemas)
    chosen = "from [tool.rlscheck] schemas" if settings.sweep.schemas else "the default"
    lines = [f"Nothing to check: the sweep found no table, view or function in the schema(s) {schemas} ({chosen})."]
    if settings.migrations:
        lines.append(f"Migrations applied: {len(settings.migrations)} file(s), from {settings.migration_origin}:")
        lines += [f"  {_shown(path, settings.rootdir)}" for path in settings.migrations]
        lines.append(f"They create no table, view or function in {schemas}.")
    elif settings.empty_migration_dirs:
        empty = ", ".join(str(d) for d in settings.empty_migration_dirs)
        lines.append(f"Migrations applied: none. {empty} holds no .sql file (from {settings.migration_origin}).")
    else:
        lines.append(
            f"Migrations applied: none. Looked for {settings.migration_origin}; neither --rlscheck-migrations "
            "nor [tool.rlscheck] migrations is set."
        )
    elsewhere = _other_schemas(sweep)
    if elsewhere:
        listed = ", ".join(f"{name} ({n})" for name, n in elsewhere)
        suggestion = ", ".join(f'"{name}"' for name in (*sweep.schemas, *(name for name, _ in elsewhere)))
        lines.append(
            f"Tables or views exist in other schemas: {listed}. If the API exposes them, sweep them: "
            f"[tool.rlscheck] schemas = [{suggestion}]."
        )
    lines.append(POINT_AT_MIGRATIONS)
    return "\n".join(lines)


def _other_schemas(sweep: Sweep) -> list[tuple[str, int]]:
    """Schemas outside the swept ones (and PostgreSQL's and Supabase's own) that hold relations."""
    skip = [*MANAGED_SCHEMAS, *sweep.schemas]
    return [(name, n) for name, n in sweep.session.worker_connection().execute(OTHER_SCHEMAS_SQL, {"skip": skip})]


def _shown(path: Path, rootdir: Path) -> str:
    try:
        return str(path.relative_to(rootdir))
    except ValueError:
        return str(path)


# -- principals whose tenant cannot be in the tenant column ----------------------------------


@dataclass(frozen=True)
class TenantMismatch:
    """A principal's tenant that is no value of the tenant column it is compared with."""

    principal: str  # its name in [tool.rlscheck.principals]
    tenant: Any
    column: str  # schema.relation.column
    type: str
    objects: tuple[ObjectRef, ...]  # the tenant-leak checks it would judge wrongly


def tenant_mismatches(sweep: Sweep) -> list[TenantMismatch]:
    """Principals whose ``tenant`` the tenant columns cannot hold (``5`` for a uuid column):
    every row would look like another tenant's, a leak that is not one."""
    tenants = {name: spec.tenant for name, spec in sweep.config.principals.items() if spec.tenant is not None}
    columns = _tenant_columns(sweep) if tenants else {}
    fits: dict[tuple[str, str], bool] = {}
    found = []
    for name, tenant in tenants.items():
        for (column, type_), objects in columns.items():
            key = (type_, str(tenant))
            if key not in fits:
                fits[key] = _fits(sweep, str(tenant), type_)
            if not fits[key]:
                found.append(TenantMismatch(name, tenant, column, type_, tuple(objects)))
    return found


def _tenant_columns(sweep: Sweep) -> dict[tuple[str, str], list[ObjectRef]]:
    """(schema.relation.column, type) of each tenant column the tenant-leak checks compare
    principals' tenants with, and the objects of those checks."""
    assert sweep.ctx is not None
    columns: dict[tuple[str, str], list[ObjectRef]] = {}
    for check in sweep.checks:
        rel = _compared_relation(sweep, check) if check.rule == tenant_leak.RULE else None
        key = sweep.ctx.tenant_key(rel) if rel is not None else None
        if rel is None or key is None or key.per_user or not key.column:
            continue  # no tenant column (per-user tables compare subs, tenant_sql an expression)
        column = rel.column(key.column)
        if column is not None:
            columns.setdefault((f"{rel.qualified}.{column.name}", column.type), []).append(check.object)
    return columns


def _compared_relation(sweep: Sweep, check: Check) -> Relation | None:
    """The relation whose rows a tenant-leak check compares: the table or view, or the one a
    set-returning function returns (as the check itself finds it)."""
    assert sweep.ctx is not None
    catalog = sweep.ctx.catalog
    if check.kind in ("table", "view"):
        return catalog.relation(check.oid)
    fn = next((f for f in catalog.functions if f.oid == check.oid), None)
    returned = fn.result.removeprefix("SETOF ").strip() if fn is not None else ""
    return next((r for r in catalog.relations if returned in (r.name, r.qualified)), None)


def _fits(sweep: Sweep, tenant: str, type_: str) -> bool:
    """Whether PostgreSQL reads ``tenant`` as a value of ``type_``."""
    conn = sweep.session.worker_connection()
    try:
        conn.execute(sql.SQL("select %s::text::{}").format(sql.SQL(type_)), [tenant])
    except (psycopg.errors.DataError, psycopg.errors.IntegrityError):
        return False
    except psycopg.OperationalError:
        raise
    except psycopg.Error:  # a type this cast cannot name: no judgement rather than a wrong one
        return True
    return True


def mismatch_report(mismatches: list[TenantMismatch]) -> str:
    """One line per principal and type, the objects left unchecked, and the fix."""
    columns: dict[tuple[str, str, str], list[str]] = {}
    for m in mismatches:
        columns.setdefault((m.principal, _toml(m.tenant), m.type), []).append(m.column)
    lines = ["[tool.rlscheck.principals]: tenants the tenant columns cannot hold:"]
    for (principal, tenant, type_), names in columns.items():
        more = f" and {len(names) - 1} more tenant column(s)" if len(names) > 1 else ""
        lines.append(f"  - {principal}: tenant = {tenant} is not a valid {type_} (the type of {names[0]}{more})")
    objects = sorted({obj.display for m in mismatches for obj in m.objects})
    lines.append(
        f"tenant-leak was not checked on {', '.join(objects)}: the isolation checks compare each row's tenant with "
        "the principal's, and with a tenant of another type every row would look like another tenant's (a leak "
        "that is not one) or none would be found."
    )
    examples = "; ".join(f"{type_}: e.g. tenant = {_example(type_)}" for type_ in dict.fromkeys(m.type for m in mismatches))
    lines.append(f"Fix: set each principal's tenant to the id of their tenant as those columns store it ({examples}).")
    return "\n".join(lines)


def _toml(value: Any) -> str:
    return f'"{value}"' if isinstance(value, str) else str(value)


def _example(type_: str) -> str:
    if type_ in ("smallint", "integer", "bigint", "numeric"):
        return "42"
    if type_ == "uuid":
        return '"aaaaaaaa-0000-0000-0000-000000000001"'
    return '"…"'
