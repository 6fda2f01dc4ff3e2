"""existence-oracle: a unique key on a tenant table that leaves out the tenant column, on
values users choose (slugs, hostnames, emails, names). An insert into one's own tenant with
another tenant's value fails with 23505 and says that the value exists: measured, as each
principal, by :mod:`pytest_rlscheck.existence`. Where RLS or the privileges refuse the
insert there is no oracle and no finding."""

from __future__ import annotations

from typing import Any

from psycopg import sql

from ..catalog import Relation, quote
from ..existence import UniqueKey, chosen_by_user, existence_oracle, secret_column, shown_values, unique_keys
from ..findings import Finding, Severity
from . import Measurement, SweepContext, dynamic_rule, ref
from .tenant_leak import pair

RULE = "existence-oracle"


def oracle_keys(ctx: SweepContext, rel: Relation) -> tuple[str, list[UniqueKey]] | None:
    """The tenant column and the unique keys that could be oracles: without the tenant
    column, on columns whose values the user chooses, none of them a secret (a token or a
    hash nobody finds by guessing: its duplicate tells nothing)."""
    key = ctx.tenant_key(rel)
    if key is None or key.per_user or not key.column or not rel.rls_enabled:
        return None
    keys = [
        k for k in unique_keys(rel)
        if key.column not in k.columns
        and all((c := rel.column(n)) is not None and chosen_by_user(c) for n in k.columns)
        and not any(secret_column(n) for n in k.columns)
    ]
    return (key.column, keys) if keys else None


def _applies(ctx: SweepContext, kind: str, obj: Any) -> bool:
    return oracle_keys(ctx, obj) is not None


@dynamic_rule(RULE, Severity.WARN, "table", "a unique key without the tenant column tells users what other tenants hold",
              applies=_applies)
def run(m: Measurement) -> tuple[list[Finding], dict[str, Any]]:
    rel = m.ctx.catalog.relation(m.check.oid)
    found = oracle_keys(m.ctx, rel)
    users = pair(list(m.principals))
    if found is None or users is None:
        return [], {}
    tenant, keys = found
    findings = []
    for key in keys:
        for user, other in (users, users[::-1]):
            oracle = existence_oracle(m.rls, rel, tenant, key, user, other)
            if oracle is not None:
                findings.append(_finding(rel, tenant, oracle, _referencing(m.ctx, rel, key)))
                break
    return findings, {}


def _referencing(ctx: SweepContext, rel: Relation, key: UniqueKey) -> list[str]:
    """The foreign keys that reference ``key``'s columns, as ``"schema"."table" ("name")``."""
    return [
        f"{other.shown} ({quote(c.name)})"
        for other in ctx.catalog.relations for c in other.constraints
        if c.type == "f" and c.referenced_oid == rel.oid and set(c.referenced_columns) == set(key.columns)
    ]


def _finding(rel: Relation, tenant: str, oracle: Any, referencing: list[str] | None = None) -> Finding:
    key: UniqueKey = oracle.key
    columns = ", ".join(key.columns)
    scoped = sql.SQL(", ").join(map(sql.Identifier, (tenant, *key.columns))).as_string(None)
    new_name = quote(f"{rel.name}_{tenant}_{'_'.join(key.columns)}_key")
    referencing = referencing or []
    if key.primary or referencing:  # dropping it drops the table's identity, or fails (2BP01)
        what = "the primary key" if key.primary else "a unique key"
        cols = ", ".join(quote(c) for c in key.columns)
        fks = "".join(f"\n--   {f}" for f in referencing)
        fix = (
            f"-- {quote(key.name)} is {what} of {rel.shown}"
            + (f", and foreign keys reference it:{fks}" if referencing else "")
            + "\n-- Replacing it with a per-tenant key in one ALTER TABLE would "
            + ("drop the table's primary key and " if key.primary else "")
            + "fail while foreign keys depend on it (2BP01). Make the key composite, step by step:"
            f"\n--   ALTER TABLE {rel.shown} ADD CONSTRAINT {new_name} UNIQUE ({scoped});"
            + (f"\n--   point each foreign key above at ({quote(tenant)}, {cols}) REFERENCES {rel.shown} ({scoped})" if referencing else "")
            + f"\n--   ALTER TABLE {rel.shown} DROP CONSTRAINT {quote(key.name)}"
            + (f", ADD PRIMARY KEY ({scoped});" if key.primary else ";")
        )
    elif key.constraint:
        fix = (f"ALTER TABLE {rel.shown} DROP CONSTRAINT {quote(key.name)}, ADD CONSTRAINT {new_name} "
               f"UNIQUE ({scoped});")
    else:
        fix = f"DROP INDEX {quote(rel.schema, key.name)};\nCREATE UNIQUE INDEX {quote(key.name)} ON {rel.shown} ({scoped});"
    return Finding(
        RULE,
        Severity.WARN,
        ref(rel),
        f"Acting as {oracle.user.sub} (tenant {oracle.user.tenant}), inserting a row into their own tenant with "
        f"{shown_values(oracle.values, key.columns)} (taken from a row of tenant {oracle.other.tenant}) failed with "
        f"{oracle.error} ({key.name}): RLS let the row through and the unique key ({columns}), which leaves out "
        f"{tenant}, told the user that another tenant holds the value. Any value can be tried this way.",
        f"-- make the key per tenant:\n{fix}\n-- if the value must be unique across tenants (a hostname), the oracle "
        "is inherent: claim values through a function that does not say why it failed, and ignore this finding with "
        "the reason",
        details={"constraint": key.name, "user": oracle.user.sub},
    )
