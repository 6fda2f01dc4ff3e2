"""definer-exposed: a SECURITY DEFINER function the API roles can call.

It is an error when the function takes a user or tenant id as a parameter and never asks
who is calling: any caller can then pass someone else's id. A parameter counts as an id
when it is named for a user, owner, member, tenant or organisation (``p_user_id``,
``_org_id``), for the configured tenant column, or for a column the policies filter on
(``_gym_id`` where the policies compare ``gym_id``), or any parameter that defaults to
``auth.uid()``; booleans, text without an ``id`` suffix and OUT/TABLE columns do not. When
the body reads the caller (``auth.uid()``, the JWT claims), itself or through a function it
calls, it is a warning: the check is probably there, and is worth a look.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

from ..catalog import Function
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
        identity = identity_parameters(fn, scope_columns)
        guarded = fn.oid in readers  # the body's own look (a DEFAULT auth.uid() is none)
        severity = Severity.ERROR if identity and not guarded else Severity.WARN
        extra = ""
        defaulted = caller_defaulted(fn)
        if identity and not guarded:
            extra = (
                f" It takes {', '.join(identity)} and never asks who is calling: any caller can pass someone "
                "else's id and act on their data."
                + (f" ({', '.join(defaulted)} only defaults to auth.uid().)" if defaulted else "")
            )
        elif identity:
            extra = (
                f" It takes {', '.join(identity)}; its body reads the caller's identity, so check that it "
                "compares every one of them with the caller."
            )
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
            details={"identity_parameters": identity, "reads_caller": guarded},
        )
