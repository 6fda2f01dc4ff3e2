"""definer-exposed: a SECURITY DEFINER function the API roles can call."""

from __future__ import annotations

import re
from collections.abc import Iterator

from ..findings import Finding, Severity
from . import API_ROLES, SweepContext, function_name, rule

_IDENTITY_PARAM = re.compile(r"(^|_)(user|uid|owner|member|account|tenant|org|organization|team|workspace)(_?id)?s?$", re.I)


@rule("definer-exposed", Severity.WARN, "function", "SECURITY DEFINER function callable through the API")
def check(ctx: SweepContext) -> Iterator[Finding]:
    for fn in ctx.functions():
        callers = sorted(set(fn.executable_by) & {*API_ROLES, "public"})
        if not fn.security_definer or not callers or fn.result in ("trigger", "event_trigger"):
            continue  # a trigger function cannot be called as an RPC
        identity = [n for n in fn.argument_names if n and _IDENTITY_PARAM.search(n)]
        severity = Severity.ERROR if identity else Severity.WARN
        extra = (
            f" It takes {', '.join(identity)}: any caller can pass someone else's id and get their data."
            if identity else ""
        )
        yield Finding(
            "definer-exposed",
            severity,
            function_name(fn),
            f"{fn.qualified} runs with the rights of {fn.owner} (bypassing RLS: {fn.owner_bypasses_rls}) and "
            f"{', '.join(callers)} may execute it; in an exposed schema it is an RPC endpoint.{extra}",
            f"Move it to a schema the API does not expose (e.g. private), or REVOKE EXECUTE ON FUNCTION "
            f"{function_name(fn)} FROM public, anon, authenticated;"
            + (" and derive the user from (select auth.uid()) inside it instead of a parameter." if identity else ""),
            details={"identity_parameters": identity},
        )
