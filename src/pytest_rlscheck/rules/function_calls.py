"""Functions with parameters through the API, called with the other tenant's ids (for
tenant-leak): which functions, which of their parameters are ids, and the finding.

A function in an exposed schema that the API roles may execute and that takes a user or
tenant id (as definer-exposed recognises them) is called as each principal with the other's
ids and, when anon may execute it, as anon. See :mod:`pytest_rlscheck.function_probes`."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .. import access
from ..access import Cell
from ..catalog import Function
from ..effects import Scope
from ..findings import Finding, ObjectRef, Severity
from ..function_probes import (
    ROW_ID,
    TENANT_ID,
    USER_ID,
    Attempt,
    call_function,
    function_arguments,
    id_columns,
    id_kind,
    row_table,
)
from ..impersonation import Principal, anon_identity
from . import API_ROLES, SweepContext
from .definer_exposed import identity_parameters

if TYPE_CHECKING:
    from ..protocol import RlsProtocol as Rls

__all__ = ["effects_scope", "id_parameters", "leaky_calls"]

_NOT_CALLABLE = ("trigger", "event_trigger")
_KINDS = {USER_ID: "a user id", TENANT_ID: "a tenant id", ROW_ID: "the id of a tenant's row"}
_last: list[tuple[SweepContext, tuple[set[str], set[str]]]] = []


def _columns(ctx: SweepContext) -> tuple[set[str], set[str]]:
    """:func:`id_columns` of the sweep's catalog, kept for the last context (one per sweep)."""
    if not _last or _last[0][0] is not ctx:
        _last[:] = [(ctx, id_columns(ctx.catalog, ctx.schemas, ctx.config))]
    return _last[0][1]


def id_parameters(ctx: SweepContext, fn: Function) -> dict[str, str]:
    """The parameters of ``fn`` that take a user or a tenant id: name -> "user" or "tenant"
    (an API-callable function of an exposed schema only)."""
    if fn.schema not in ctx.schemas or not fn.argument_types or not fn.result or fn.result in _NOT_CALLABLE:
        return {}
    if not set(fn.executable_by) & {*API_ROLES, "public"} or "VARIADIC" in fn.arguments:
        return {}
    users, tenants = _columns(ctx)
    found = {}
    for name in identity_parameters(fn, users | tenants):
        if name in fn.caller_defaults:
            found[name] = USER_ID
        else:
            found[name] = id_kind(name, user_columns=users, tenant_columns=tenants) or TENANT_ID
    # the id of a tenant's row (p_conversation_id: conversations.id), filled from the other tenant's rows
    required = len(fn.argument_types) - fn.defaults
    for name in fn.argument_names[:required]:
        if name and name not in found and row_table(ctx.catalog, ctx.schemas, fn, name, ctx.config) is not None:
            found[name] = ROW_ID
    return found


def effects_scope(rls: Rls, ctx: SweepContext, memo: dict[str, Any]) -> Scope:
    """The tables whose changes the probes measure: read once per sweep."""
    if "effects.scope" not in memo:
        memo["effects.scope"] = Scope.of(rls, ctx.catalog, ctx.schemas, ctx.config)
    return memo["effects.scope"]


def _pairs(principals: list[Principal]) -> list[tuple[Principal, Principal]]:
    """Principals of different tenants; in a project without tenants (per-user data), of
    different users: a user's id, or the id of one of their rows, is then what is theirs."""
    tenants = [p for p in principals if p.tenant is not None]
    pairs = [(a, b) for a in tenants for b in tenants if str(a.tenant) != str(b.tenant)]
    if pairs or tenants:
        return pairs
    return [(a, b) for a in principals for b in principals if str(a.sub) != str(b.sub)]


def leaky_calls(
    rls: Rls, ctx: SweepContext, fn: Function, principals: list[Principal], memo: dict[str, Any], rule: str,
    record: dict[str, Any] | None = None,
) -> tuple[list[Finding], str]:
    """Call ``fn`` as each principal (and anon) with another tenant's ids; a finding of
    ``rule`` when a call returned or changed what is theirs. ``record``: filled with each
    caller's cell of the access matrix (:func:`call_cell`), by name."""
    record = {} if record is None else record
    ids = id_parameters(ctx, fn)
    if not ids:
        return [], "not applicable"
    pairs = _pairs(principals)
    if not pairs:
        return [], "no principals"  # the tables' items say so
    scope = effects_scope(rls, ctx, memo) if fn.volatility == "v" else None  # only VOLATILE ones can write
    judge = bool({TENANT_ID, ROW_ID} & set(ids.values()))  # a user's public data is often readable by design
    anon = fn.executable("anon")
    attempts: list[Attempt] = []
    names = {**{str(p.sub): n for n, p in ctx.config.principals.items()}, **ctx.names}
    shown: dict[int, str] = {}  # id(attempt) -> "called as alice with bob's ...: ..."
    for user, other in pairs:
        args = function_arguments(rls, ctx.catalog, ctx.schemas, fn, ids, other, ctx.config)
        identity = rls.identity_for(user)
        assert identity is not None
        theirs = names.get(str(other.sub), f"user {other.sub}")
        given = ", ".join(f"{theirs}'s {_whose(a.source)} ({a.name})" for a in args if _theirs(a.source))
        calls = [(call_function(rls, fn, args, identity, other, caller=f"user {user.sub}", scope=scope, judge_answer=judge),
                  names.get(str(user.sub), f"user {user.sub}"))]
        if anon:
            calls.append((call_function(rls, fn, args, anon_identity(rls.config.platform), other, caller="anon", scope=scope,
                                        judge_answer=judge), "anon"))
        for attempt, who in calls:
            attempts.append(attempt)
            shown[id(attempt)] = attempt.describe(who, given)
            by_anon = attempt.caller == "anon"
            role = "anon" if by_anon else user.role
            cell = call_cell(attempt, shown[id(attempt)], executable=fn.executable(role), tenant=not by_anon)
            record[who] = access.wider(record.get(who), cell)
        if any(a.leaked for a in attempts):
            break  # shown for one pair: the other directions cost calls and say the same
    leaks = [a for a in attempts if a.leaked]
    if leaks:
        return [_finding(fn, ids, leaks, rule, [shown[id(a)] for a in leaks])], "LEAK"
    failed = [a for a in attempts if a.failed]
    if failed:  # neither an answer nor a refusal: nothing was shown either way
        return [_unproven(fn, ids, failed, rule)], "not proven"
    return [], "verified"


def call_cell(attempt: Attempt, shown: str, *, executable: bool = True, tenant: bool = True) -> Cell:
    """A call with another tenant's ids as a cell of the access matrix: it returned or changed
    theirs, it failed, it was refused (the privilege, RLS, or a RAISE of the function), or it
    answered with nothing of theirs (own rows only; for anon, who has no tenant: allowed)."""
    if attempt.leaked:
        return Cell(access.OTHERS, "yes", shown, {"others_reached": attempt.theirs or len(attempt.changes)})
    if attempt.failed:
        return Cell(access.ERROR, "yes", f"{shown}: {attempt.error}")
    if attempt.refused:
        error = attempt.error or ""
        if not executable:
            return Cell(access.PRIVILEGE, "yes", error)
        return Cell(access.POLICY if error.startswith("42501") else access.SCHEMA, "yes", error)
    return Cell(access.OWN if tenant else access.ALLOWED, "yes", shown, {"returned": attempt.rows})


#: Result types whose single value is a count or a flag: what they tell is whether, or how many.
_SCALARS = ("boolean", "integer", "bigint", "smallint", "numeric", "real", "double precision")


def _counts_only(result: str) -> bool:
    """A result of flags and numbers only: a scalar one, or ``TABLE(open bigint, closed bigint)``."""
    result = result.removeprefix("SETOF ").strip()
    if result in _SCALARS:
        return True
    if not result.startswith("TABLE(") or not result.endswith(")"):
        return False
    columns = [c.strip() for c in result[len("TABLE("):-1].split(",")]
    return bool(columns) and all(c.split(" ", 1)[-1].strip() in _SCALARS for c in columns)


def _oracle(fn: Function, leaks: list[Attempt]) -> bool:
    """Its only leak is flags or numbers equal to the owner's answer (a bit, a count): it tells
    the caller something about them, not their rows."""
    return _counts_only(fn.result) and all(a.answer_only for a in leaks)


def _unproven(fn: Function, ids: dict[str, str], failed: list[Attempt], rule: str) -> Finding:
    params = ", ".join(f"{n} ({_KINDS[k]})" for n, k in ids.items())
    shown = "\n".join(f"  as {a.caller}: {a.statement} -> {a.error}" for a in failed[:4])
    more = f"\n  (and {len(failed) - 4} more)" if len(failed) > 4 else ""
    return Finding(
        rule,
        Severity.INFO,
        ObjectRef("function", fn.schema, fn.name, fn.arguments),
        f"{fn.qualified} takes {params}: isolation not verified, the call with another tenant's ids failed with an error "
        f"that is not a refusal (42501, or a RAISE of the function):\n{shown}{more}\n"
        "To have it verified, make the function refuse a caller it does not serve with an error of its own (RAISE "
        "with errcode 42501), or configure values for its other parameters, so that the check can tell a refusal "
        "from a failure.",
        "",
        details={"callers": sorted({a.caller for a in failed}), "parameters": ids, "calls": [a.statement for a in failed],
                 "errors": [a.error for a in failed]},
    )


def _theirs(source: str) -> bool:
    return source in ("their user id", "their tenant") or source.endswith(" of theirs")


def _whose(source: str) -> str:
    """``their tenant`` -> ``tenant``; ``public.conversations.id of theirs`` -> ``public.conversations.id``."""
    return source.removeprefix("their ").removesuffix(" of theirs")


def _finding(fn: Function, ids: dict[str, str], leaks: list[Attempt], rule: str, lines: list[str] | None = None) -> Finding:
    params = ", ".join(f"{n} ({_KINDS[k]})" for n, k in ids.items())
    lines = lines or [a.describe() for a in leaks]
    shown = "\n".join(f"  {line}" for line in lines[:4])
    more = f"\n  (and {len(leaks) - 4} more)" if len(leaks) > 4 else ""
    runs = "with its owner's rights (SECURITY DEFINER)" if fn.security_definer else "as the caller (SECURITY INVOKER)"
    oracle = _oracle(fn, leaks)
    if oracle:
        what = "whether" if fn.result == "boolean" else "how many (or how much)"
        reached = (f"called with another tenant's ids it answers what the owner would: it tells the caller {what} "
                   "something holds for that tenant (none of their rows is returned or changed)")
    else:
        reached = "called with another tenant's ids it reached their data"
    return Finding(
        rule,
        Severity.WARN if oracle else Severity.ERROR,
        ObjectRef("function", fn.schema, fn.name, fn.arguments),
        f"{fn.qualified} runs {runs} and takes {params}: {reached}:\n{shown}{more}",
        f"REVOKE EXECUTE ON FUNCTION {fn.shown} FROM PUBLIC, anon, authenticated;"
        "\n-- or keep it callable and check the caller inside it: compare every id parameter with (SELECT auth.uid()) "
        "or the caller's tenants, and raise (errcode 42501) or return nothing when they do not match; or derive the "
        "user from (SELECT auth.uid()) instead of a parameter"
        + (f"\n-- or let RLS apply to what it reads: ALTER FUNCTION {fn.shown} SECURITY INVOKER;" if fn.security_definer else ""),
        details={"callers": sorted({a.caller for a in leaks}), "parameters": ids, "calls": [a.statement for a in leaks]},
    )
