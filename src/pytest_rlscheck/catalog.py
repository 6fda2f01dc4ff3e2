"""The catalog's objects: relations, columns, constraints, indexes, policies and functions
as frozen dataclasses. They are read in bulk by :mod:`pytest_rlscheck.catalog_loader` (one
query per kind, whatever the number of tables; the queries are in
:mod:`pytest_rlscheck.catalog_sql`); what policies and function bodies do is in their facts
(:mod:`pytest_rlscheck.policy_model`)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import psycopg
from psycopg import sql

from .policy_model import ExprFacts, FunctionFacts

__all__ = [
    "AUTH_USERS",
    "quote",
    "Catalog",
    "Dependency",
    "Column",
    "Constraint",
    "Function",
    "Index",
    "Policy",
    "Relation",
    "Trigger",
    "resolve_relation",
]

AUTH_USERS = "auth.users"


def quote(*parts: str) -> str:
    """An identifier as SQL shown to people writes it (a fix to run): quoted by psycopg."""
    return sql.Identifier(*parts).as_string(None)


@dataclass(frozen=True)
class Column:
    name: str
    type: str
    not_null: bool
    has_default: bool
    generated: bool
    identity: bool
    position: int
    default: str | None


@dataclass(frozen=True)
class Constraint:
    name: str
    type: str  # c(heck), f(oreign key), p(rimary key), u(nique), x(exclusion), n(ot null, PG ≥ 18)
    definition: str
    validated: bool
    columns: tuple[str, ...]
    references: str | None
    #: a foreign key's referenced columns (in the order of ``columns``) and table
    referenced_columns: tuple[str, ...] = ()
    referenced_oid: int | None = None

    @property
    def to_auth_users(self) -> bool:
        """A foreign key to Supabase Auth's users: a user id (``references`` is as ``regclass``
        prints it, qualified since ``auth`` is never on the search path, maybe quoted)."""
        return self.type == "f" and (self.references or "").replace('"', "") == AUTH_USERS


@dataclass(frozen=True)
class Index:
    name: str
    unique: bool
    primary: bool
    valid: bool
    partial: bool
    definition: str
    columns: tuple[str | None, ...]  # None for an expression


@dataclass(frozen=True)
class Policy:
    name: str
    command: str  # SELECT, INSERT, UPDATE, DELETE or ALL
    permissive: bool
    roles: tuple[str, ...]  # ("public",) for every role
    using: str | None  # as pg_get_expr prints it
    with_check: str | None
    #: What each expression does, from its analysed tree (:mod:`pytest_rlscheck.policy_model`).
    using_facts: ExprFacts = field(default_factory=ExprFacts, compare=False)
    check_facts: ExprFacts = field(default_factory=ExprFacts, compare=False)

    def clauses(self) -> list[tuple[str, str, ExprFacts]]:
        """``("USING", text, facts)`` and ``("WITH CHECK", ...)`` for the expressions it has."""
        return [
            (label, text, facts)
            for label, text, facts in (("USING", self.using, self.using_facts), ("WITH CHECK", self.with_check, self.check_facts))
            if text
        ]

    def covers(self, command: str) -> bool:
        return self.command in (command, "ALL")

    def applies_to(self, role: str) -> bool:
        """Whether it is a policy of ``role``: named for it, or for PUBLIC."""
        return role in self.roles or "public" in self.roles

    def describe(self) -> str:
        kind = "permissive" if self.permissive else "restrictive"
        text = f'"{self.name}" FOR {self.command} TO {", ".join(self.roles)} ({kind})'
        if self.using:
            text += f" USING ({self.using})"
        if self.with_check:
            text += f" WITH CHECK ({self.with_check})"
        return text


#: pg_trigger.tgtype bits
_TRIGGER_ROW, _TRIGGER_BEFORE, _TRIGGER_INSTEAD = 1, 2, 64
_TRIGGER_EVENTS = ((4, "INSERT"), (8, "DELETE"), (16, "UPDATE"), (32, "TRUNCATE"))


@dataclass(frozen=True)
class Trigger:
    """A trigger on a relation (not an internal one: foreign keys have their own), with what
    its function runs as."""

    name: str
    function_oid: int
    function: str  # schema.name
    security_definer: bool  # the function runs as its owner
    function_owner: str
    owner_bypasses_rls: bool  # the function's owner is a superuser or has BYPASSRLS
    type_bits: int  # pg_trigger.tgtype
    enabled: bool  # tgenabled is not 'D'
    columns: tuple[str, ...] = ()  # UPDATE OF these columns (empty: any)

    @property
    def timing(self) -> str:
        if self.type_bits & _TRIGGER_INSTEAD:
            return "INSTEAD OF"
        return "BEFORE" if self.type_bits & _TRIGGER_BEFORE else "AFTER"

    @property
    def row_level(self) -> bool:
        return bool(self.type_bits & _TRIGGER_ROW)

    @property
    def events(self) -> tuple[str, ...]:
        return tuple(name for bit, name in _TRIGGER_EVENTS if self.type_bits & bit)

    def fires_on(self, command: str) -> bool:
        return self.enabled and command in self.events

    def describe(self) -> str:
        events = " OR ".join(e + (" OF " + ", ".join(self.columns) if e == "UPDATE" and self.columns else "") for e in self.events)
        level = "ROW" if self.row_level else "STATEMENT"
        definer = "SECURITY DEFINER, " if self.security_definer else ""
        return f"{self.name} ({self.timing} {events} FOR EACH {level}: {self.function}, {definer}owner {self.function_owner})"


@dataclass(frozen=True)
class Dependency:
    """A relation a view reads."""

    oid: int
    qualified: str
    rls_enabled: bool


@dataclass(frozen=True)
class Relation:
    oid: int
    schema: str
    name: str
    kind: str  # r, p, v, m, f
    rls_enabled: bool
    rls_forced: bool
    owner: str
    owner_bypasses_rls: bool
    security_invoker: bool
    security_barrier: bool
    estimated_rows: float
    columns: tuple[Column, ...] = ()
    constraints: tuple[Constraint, ...] = ()
    indexes: tuple[Index, ...] = ()
    policies: tuple[Policy, ...] = ()
    grants: tuple[tuple[str, str], ...] = ()  # (grantee or "public", privilege)
    depends_on: tuple[Dependency, ...] = ()  # for views: the relations they read, in any schema
    triggers: tuple[Trigger, ...] = ()
    #: for views: each output column that is a column of a table, as PostgreSQL resolved it
    #: (the query tree's ``resorigtbl``/``resorigcol``): (view column, table oid, column number)
    column_origins: tuple[tuple[str, int, int], ...] = ()

    def granted(self, role: str, privilege: str) -> bool:
        """Directly granted to ``role`` or to PUBLIC."""
        return any(g in (role, "public") and p == privilege for g, p in self.grants)

    @property
    def qualified(self) -> str:
        return f"{self.schema}.{self.name}"

    @property
    def ident(self) -> sql.Identifier:
        return sql.Identifier(self.schema, self.name)

    @property
    def shown(self) -> str:
        """``"schema"."name"``, for the SQL of a fix."""
        return quote(self.schema, self.name)

    @property
    def is_view(self) -> bool:
        return self.kind in ("v", "m")

    def column(self, name: str) -> Column | None:
        return next((c for c in self.columns if c.name == name), None)

    @property
    def primary_key(self) -> tuple[str, ...]:
        return next((c.columns for c in self.constraints if c.type == "p"), ())

    @property
    def unique_keys(self) -> list[tuple[str, ...]]:
        return [c.columns for c in self.constraints if c.type in ("p", "u")] + [
            tuple(col for col in i.columns if col) for i in self.indexes if i.unique and not i.partial
        ]

    def checks(self) -> list[Constraint]:
        return [c for c in self.constraints if c.type == "c"]

    def foreign_keys(self) -> list[Constraint]:
        return [c for c in self.constraints if c.type == "f"]


@dataclass(frozen=True)
class Function:
    oid: int
    schema: str
    name: str
    arguments: str
    language: str
    volatility: str  # i, s, v
    security_definer: bool
    config: tuple[str, ...]
    returns_set: bool
    result: str
    owner: str
    owner_bypasses_rls: bool
    argument_types: tuple[str, ...]
    argument_names: tuple[str, ...]
    executable_by: tuple[str, ...] = ()  # roles with EXECUTE ("public" for everyone)
    body: str = ""  # the source of an SQL or PL/pgSQL function
    #: The input arguments whose DEFAULT is the caller's user id (``_viewer uuid DEFAULT auth.uid()``).
    caller_defaults: tuple[str, ...] = ()
    facts: FunctionFacts = field(default_factory=FunctionFacts, compare=False)
    defaults: int = 0  # how many of the last input arguments have a DEFAULT (pronargdefaults)

    def executable(self, role: str) -> bool:
        """Whether ``role`` has EXECUTE on it, granted directly or to PUBLIC."""
        return role in self.executable_by or "public" in self.executable_by

    def reads_caller(self) -> bool:
        """Whether the body itself asks who is calling: auth.uid(), auth.jwt(), the claims."""
        return self.facts.reads_caller

    def calls(self) -> frozenset[str]:
        """The names (without schema, lower case) of what the body calls."""
        return self.facts.calls

    @property
    def qualified(self) -> str:
        return f"{self.schema}.{self.name}"

    @property
    def signature(self) -> str:
        return f"{self.qualified}({self.arguments})"

    @property
    def shown(self) -> str:
        """``"schema"."name"(arguments)``, for the SQL of a fix."""
        return f"{quote(self.schema, self.name)}({self.arguments})"


@dataclass(frozen=True)
class Catalog:
    relations: tuple[Relation, ...]
    functions: tuple[Function, ...] = ()

    @classmethod
    def load(
        cls,
        conn: psycopg.Connection[Any],
        *,
        oids: Iterable[int] = (),
        schemas: Sequence[str] = (),
        functions: bool = False,
    ) -> Catalog:
        """Read the relations given by ``oids`` and every relation of ``schemas`` (and, with
        ``functions``, the project's functions in ``schemas``): see :func:`catalog_loader.load`."""
        from .catalog_loader import load

        return load(conn, oids=oids, schemas=schemas, functions=functions)

    def relation(self, oid_or_name: int | str) -> Relation:
        for rel in self.relations:
            if rel.oid == oid_or_name or rel.qualified == oid_or_name:
                return rel
        raise KeyError(oid_or_name)


def resolve_relation(conn: psycopg.Connection[Any], name: str) -> Relation:
    """Look ``name`` up the way SQL would (search_path applies) and load it from the catalog."""
    from .catalog_loader import resolve_relation as resolve

    return resolve(conn, name)
