"""definer-exposed: a SECURITY DEFINER function the API roles can call.

It is judged by what its body touches (:mod:`pytest_rlscheck.function_body`: the relations it
reads, the rows it writes and how they are chosen, dynamic SQL, with what the functions it
calls touch):

* it reads and writes no table and runs no SQL text: no finding (its owner's rights give a
  caller nothing);
* it writes a table RLS protects, or the platform's (``auth.users``, ``storage.objects``...),
  with the rows chosen by a parameter or not chosen at all (no WHERE), its owner bypasses
  RLS there, and it never reads the caller: an **error**, saying who can do what ("anon and
  any signed-in user can update any row of public.conversations by id", "... can delete any
  stored file", "... can create a user");
* it takes a user or tenant id and never asks who is calling: an **error** as well. A
  parameter counts as an id when it is named for a user, owner, member, tenant or
  organisation (``p_user_id``, ``_org_id``), for the configured tenant column, or for a
  column the policies filter on (``_gym_id`` where the policies compare ``gym_id``), or any
  parameter that defaults to ``auth.uid()``; booleans, text without an ``id`` suffix and
  OUT/TABLE columns do not;
* otherwise a **warning**: an RPC endpoint that bypasses RLS. When the body reads the caller
  (``auth.uid()``, the JWT claims), itself or through a function it calls, the check is
  probably there and is worth a look (is every parameter compared?).

The message says whether tenant-leak calls it with the other tenant's ids (and so measures
what it returns or changes) or why it is not measured.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

from ..catalog import Function
from ..function_body import Write, touches
from ..findings import Finding, Severity
from . import API_ROLES, SweepContext, ref, rule
from .unindexed_policy_column import policy_columns

RULE = "definer-exposed"

_IDENTITY_PARAM = re.compile(
    r"(^|_)(user|uid|owner|member|account|tenant|org|organization|team|workspace|profile|admin|actor|caller"
    r"|requester|author|creator)(_?id)?s?$",
    re.IGNORECASE,
)
_PREFIX = re.compile(r"^(p|in|arg|param|v|i)_+|^_+", re.IGNORECASE)
_NOT_AN_ID = ("boolean", "json", "jsonb", "date", "timestamp with time zone", "timestamp without time zone")
_TEXT = ("text", "character varying", "name", "citext", "character")
_ID_SUFFIX = re.compile(r"ids?$", re.IGNORECASE)


def _scope_columns(ctx: SweepContext) -> set[str]:
    """Column names that pick a tenant or a user: configured, guessed, or filtered on by policies."""
    names: set[str] = set()
    for rel in ctx.tables():
        key = ctx.tenant_key(rel)
        if key is not None and key.column:
            names.add(key.column.lower())
        if rel.rls_enabled:
            names |= {c.lower() for c in policy_columns(rel, scanning_only=False)}
    return {n for n in names if n != "id"}


def callers_readers(functions: list[Function]) -> set[int]:
    """The functions that read the caller's identity, themselves or through functions they
    call (``current_user_account_role(account_id)`` that compares with ``auth.uid()``).
    Calls are matched by name: a body that calls any reader counts, whatever it does with it."""
    callers: dict[str, set[int]] = {}
    for f in functions:
        for name in f.calls():
            callers.setdefault(name, set()).add(f.oid)
    by_oid = {f.oid: f for f in functions}
    readers = {f.oid for f in functions if f.reads_caller()}
    todo = list(readers)
    while todo:
        name = by_oid[todo.pop()].name.lower()
        for oid in callers.get(name, ()):
            if oid not in readers:
                readers.add(oid)
                todo.append(oid)
    return readers


def caller_defaulted(fn: Function) -> list[str]:
    """Parameters that default to the caller (``_viewer uuid DEFAULT auth.uid()``): any caller
    can pass another user's id instead."""
    return list(fn.caller_defaults)


def identity_parameters(fn: Function, scope_columns: set[str]) -> list[str]:
    found = []
    defaulted = set(caller_defaulted(fn))
    for name, type_ in zip(fn.argument_names, fn.argument_types, strict=False):
        if name in defaulted:
            found.append(name)
            continue
        if not name or type_ in _NOT_AN_ID or type_.endswith("[]") and type_[:-2] in _NOT_AN_ID:
            continue
        bare = _PREFIX.sub("", name).lower()
        if type_.split("(")[0] in _TEXT and not _ID_SUFFIX.search(bare):
            continue  # p_author text, p_team text: more often a name than an id
        if _IDENTITY_PARAM.search(name) or bare in scope_columns or name.lower() in scope_columns:
            found.append(name)
    return found


#: What a write lets the caller do to the platform's tables, by command.
_PLATFORM_CAN = {
    ("INSERT", "auth.users"): "create a user",
    ("UPDATE", "auth.users"): "change any user's account (auth.users)",
    ("DELETE", "auth.users"): "delete any user",
    ("INSERT", "auth.identities"): "attach a sign-in identity to any user (auth.identities)",
    ("UPDATE", "auth.identities"): "change any user's sign-in identities (auth.identities)",
    ("DELETE", "auth.identities"): "delete any user's sign-in identities (auth.identities)",
    ("INSERT", "storage.objects"): "create stored files in anyone's name (storage.objects)",
    ("UPDATE", "storage.objects"): "change any stored file (storage.objects)",
    ("DELETE", "storage.objects"): "delete any stored file",
    ("INSERT", "storage.buckets"): "create a bucket",
    ("UPDATE", "storage.buckets"): "change any bucket (make it public)",
    ("DELETE", "storage.buckets"): "delete any bucket",
    ("INSERT", "vault.secrets"): "store secrets in the vault",
    ("UPDATE", "vault.secrets"): "overwrite any secret in the vault (vault.secrets)",
}
_VERB = {"INSERT": "insert", "UPDATE": "update", "DELETE": "delete", "MERGE": "merge into", "TRUNCATE": "empty"}


def _can(w: Write, params: list[str]) -> str:
    """What a write lets any caller do: "update any row of public.conversations by id"."""
    through = f" (through {w.through})" if w.through else ""
    known = _PLATFORM_CAN.get((w.command if w.command != "MERGE" else "UPDATE", w.table))
    if w.command == "TRUNCATE":
        return f"empty {w.table}{through}"
    if known is not None:
        return known + through
    if w.command == "INSERT":
        return f"insert rows of their choosing into {w.table}{through}"
    if w.chosen_by == "unconstrained":
        return f"{_VERB[w.command]} every row of {w.table}{through}"
    columns = sorted({c for c, _ in w.compared})
    by = f" by {', '.join(columns)}" if columns else (f" through {', '.join(params)}" if params else "")
    return f"{_VERB[w.command]} any row of {w.table}{by}{through}"


def _bypasses(fn: Function, ctx: SweepContext, w: Write) -> bool:
    """Its owner writes ``w.table`` past RLS: a superuser or BYPASSRLS, or the table's owner
    (unless RLS is forced). A platform table: the owner's grants decide, assumed given."""
    if fn.owner_bypasses_rls or w.platform:
        return True
    rel = next((r for r in ctx.catalog.relations if r.qualified.lower() == w.table), None)
    return rel is None or (rel.owner == fn.owner and not rel.rls_forced)


def _measured(ctx: SweepContext, fn: Function) -> str:
    """Whether tenant-leak calls it with the other tenant's ids, or why not."""
    from .function_calls import id_parameters

    if not ctx.names and not ctx.config.principals:
        return " Not measured: the sweep has no principals to call it as."
    if id_parameters(ctx, fn) or (fn.returns_set and not fn.argument_types):
        return " tenant-leak calls it as one principal with the other's ids and reports what it returns or changes."
    return " Not measured: none of its parameters takes an id the sweep can fill with another tenant's."


@rule(RULE, Severity.WARN, "function", "SECURITY DEFINER function callable through the API")
def check(ctx: SweepContext) -> Iterator[Finding]:
    scope_columns: set[str] | None = None
    readers: set[int] | None = None
    for fn in ctx.functions():
        callers = sorted(set(fn.executable_by) & {*API_ROLES, "public"})
        if not fn.security_definer or not callers or fn.result in ("trigger", "event_trigger"):
            continue  # a trigger function cannot be called as an RPC
        if scope_columns is None or readers is None:
            scope_columns = _scope_columns(ctx)
            readers = callers_readers(list(ctx.catalog.functions))
        touched = touches(fn, ctx.catalog, readers)
        if touched.nothing:
            continue  # it reads and writes no table and runs no SQL text: its owner's rights give nothing
        identity = identity_parameters(fn, scope_columns)
        guarded = fn.oid in readers  # the body's own look (a DEFAULT auth.uid() is none)
        who = "anon and any signed-in user" if {"anon", "public"} & set(callers) else "any signed-in user"
        params = [n for n in fn.argument_names if n]
        writes = [
            w for w in touched.writes
            if w.protected and w.chosen_by in ("parameter", "unconstrained") and _bypasses(fn, ctx, w)
        ]
        unchecked = [w for w in writes if not w.by_caller]
        defaulted = caller_defaulted(fn)
        extra = ""
        if touched.requests and touched.credential and not guarded:
            severity = Severity.ERROR
            extra = (
                f" It sends HTTP requests ({', '.join(touched.requests)}) with a credential written into its body "
                f"(a JWT or the service_role key), and never asks who is calling: {who} can make those requests with "
                "that credential, e.g. Storage or Auth admin calls on any file or user."
            )
        elif writes and not guarded:
            severity = Severity.ERROR
            can = list(dict.fromkeys(_can(w, params) for w in writes))
            extra = (
                f" {who[0].upper() + who[1:]} can {'; '.join(can)}: it never asks who is calling."
                + (f" ({', '.join(defaulted)} only defaults to auth.uid().)" if defaulted else "")
                + _measured(ctx, fn)
            )
        elif identity and not guarded:
            severity = Severity.ERROR
            extra = (
                f" It takes {', '.join(identity)} and never asks who is calling: any caller can pass someone "
                "else's id and act on their data."
                + (f" ({', '.join(defaulted)} only defaults to auth.uid().)" if defaulted else "")
                + _measured(ctx, fn)
            )
        else:
            severity = Severity.WARN
            if unchecked:
                extra = (
                    f" It reads the caller's identity, but does not choose the rows it writes by it "
                    f"({'; '.join(dict.fromkeys(_can(w, params) for w in unchecked))}): check that its guard compares "
                    "every parameter with the caller."
                )
            elif identity:
                extra = (
                    f" It takes {', '.join(identity)}; its body reads the caller's identity, so check that it "
                    "compares every one of them with the caller."
                )
            if touched.requests:
                extra += (f" It sends HTTP requests ({', '.join(touched.requests)}) for any caller"
                          + (" with a credential written into its body." if touched.credential else "."))
            if touched.dynamic_sql:
                extra += " It runs SQL built at run time (EXECUTE): it may touch any table."
        yield Finding(
            RULE,
            severity,
            ref(fn),
            f"{fn.qualified} runs with the rights of {fn.owner} (bypassing RLS: {fn.owner_bypasses_rls}) and "
            f"{', '.join(callers)} may execute it; in an exposed schema it is an RPC endpoint.{extra}",
            f"REVOKE EXECUTE ON FUNCTION {fn.shown} FROM PUBLIC, anon, authenticated;"
            "\n-- or move it to a schema the API does not expose (the role it is for keeps EXECUTE):"
            f"\n--   ALTER FUNCTION {fn.shown} SET SCHEMA private;"
            + ("\n-- and derive the user from (SELECT auth.uid()) inside it instead of taking it as a parameter"
               if identity else ""),
            details={
                "identity_parameters": identity, "reads_caller": guarded,
                "reads": sorted(touched.reads), "dynamic_sql": touched.dynamic_sql,
                "writes": [
                    {"command": w.command, "table": w.table, "rows": w.chosen_by, "by_caller": w.by_caller,
                     **({"through": w.through} if w.through else {})}
                    for w in touched.writes
                ],
            },
        )
