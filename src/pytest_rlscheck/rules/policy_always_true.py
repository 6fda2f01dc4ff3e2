"""policy-always-true: a policy whose condition is constant true for the API roles.

What that lets someone do depends on the command, on the other policies and on whose the
rows are, and the severity follows from it (README, "Severities"):

* SELECT / DELETE / UPDATE ``USING (true)`` on rows that belong to tenants or users, with the
  privilege granted: anyone the policy names reads, deletes or changes every one of them —
  an error. Reads of every user's rows (public profiles) and of a catalogue's (rows of
  nobody's) are often the design: info. A write is still anyone's to make (error).
* INSERT ``WITH CHECK (true)``: a new row of a tenant root (a team, an organization) or of a
  table of nobody's rows is the sign-up path (info); a row of a table with a tenant column can
  name any tenant (error), one of a per-user table any user (error).
* UPDATE ``WITH CHECK (true)`` without a USING: PostgreSQL uses no USING of that policy, so
  alone it reaches no row (info); next to another UPDATE policy's USING it lets those rows be
  rewritten to anything — moved into another tenant (error where rows have a tenant).
* A restrictive policy of the same command that limits the rows makes it harmless (info).
* Without the privilege, nothing happens through the API yet: one GRANT away (warn).
"""

from __future__ import annotations

from collections.abc import Iterator

from ..catalog import Policy, Relation
from ..findings import Finding, Severity
from ..policy_model import ExprFacts
from ..tenancy import keyed_by_itself, personal_columns
from ..remedies import alter_policy, condition, with_comment
from . import API_ROLES, SweepContext, ref, rule

RULE = "policy-always-true"
_VERB = {"SELECT": "read", "INSERT": "insert", "UPDATE": "change", "DELETE": "delete"}


def always_true(text: str, facts: ExprFacts) -> str | None:
    """Why an expression lets every row through (for every signed-in user), or None: it is
    the constant true, or a condition over the caller alone that every signed-in user meets
    (``auth.uid() IS NOT NULL``, ``auth.role() = 'authenticated'``...)."""
    if facts.constant_true:
        return "true"
    if facts.every_user:
        return f"{text.strip()}, true for every signed-in user"
    return None


def who(policy: Policy, facts: list[ExprFacts]) -> str:
    """Who the policy lets through, in words: a condition that needs a signed-in user keeps
    anon out whatever roles the policy names."""
    signed_in_only = any(f.every_user and not f.constant_true for f in facts)
    roles = set(policy.roles)
    if "public" in roles and not signed_in_only:
        return "anyone, signed in or not (anon key)"
    if "anon" in roles and not signed_in_only:
        return "any signed-in user and anon (anyone with the anon key)" if "authenticated" in roles else \
            "anon (anyone with the anon key)"
    return "any signed-in user"


def _is_root(ctx: SweepContext, rel: Relation) -> bool:
    return keyed_by_itself(rel, ctx.tenant_key(rel))


def _limited_by_restrictive(rel: Relation, policy: Policy, command: str) -> bool:
    """A restrictive policy for the same command and role whose every clause limits rows."""
    return any(
        not p.permissive and p.covers(command) and (set(p.roles) & (set(policy.roles) | {"public"}))
        and p.clauses() and not any(always_true(t, f) for _, t, f in p.clauses())
        for p in rel.policies
    )


def _other_update_using(rel: Relation, policy: Policy) -> list[Policy]:
    """Other permissive UPDATE policies of the same roles with a USING: the rows they admit."""
    return [
        p for p in rel.policies
        if p is not policy and p.permissive and p.covers("UPDATE") and p.using
        and (set(p.roles) & (set(policy.roles) | {"public"}) or "public" in p.roles)
    ]


def _select_open(rel: Relation, policy: Policy) -> bool:
    """Whether a permissive SELECT policy for the same roles lets every row through too."""
    return any(
        p.permissive and p.covers("SELECT") and (set(p.roles) & (set(policy.roles) | {"public"}) or "public" in p.roles)
        and any(always_true(t, f) for label, t, f in p.clauses() if label == "USING")
        for p in rel.policies
    )


def judge(ctx: SweepContext, rel: Relation, policy: Policy, command: str, clauses: dict[str, str]
          ) -> tuple[Severity, str] | None:
    """The severity and the "who can do what" of an always-true ``clauses`` (by label) of
    ``policy`` for one ``command``; None when it lets nobody do anything."""
    facts = [f for _, _, f in policy.clauses()]
    actor = who(policy, facts)
    owned = ctx.whose_rows(rel)
    rows = {"tenant": "every tenant's rows", "user": "every user's rows", None: "every row"}[owned]
    granted = command in ctx.api_privileges(rel)
    if _limited_by_restrictive(rel, policy, command):
        return Severity.INFO, f"a restrictive {command} policy still limits the rows, so it lets no more through"
    if command == "INSERT":
        if owned is None or _is_root(ctx, rel):
            what = "a new tenant" if owned else "a row"
            return Severity.INFO, (f"{actor} can create {what} of {rel.qualified} (a sign-up path, if intended); "
                                   "it reaches no existing row")
        severity, said = Severity.ERROR, (
            f"{actor} can insert rows into {rel.qualified} for any "
            + ("tenant (the tenant column takes any value)" if owned == "tenant" else "user (credited to someone else)"))
    elif command == "UPDATE" and "USING" not in clauses:
        if not policy.using:
            others = _other_update_using(rel, policy)
            if not others:
                return Severity.INFO, ("it has no USING and no other UPDATE policy has one, so PostgreSQL lets it "
                                       "reach no row (UPDATE 0)")
            admitted = ", ".join(f'"{p.name}"' for p in others)
        else:
            admitted = "its USING"
        # the rows the USING clauses admit may be rewritten to anything
        severity = Severity.ERROR if owned else Severity.WARN
        said = (f"{actor} can rewrite the rows {admitted} admits to any value"
                + (": move them into another tenant" if owned == "tenant" else
                   ": credit them to another user" if owned == "user" else ""))
    elif command == "SELECT" and owned != "tenant" and personal_columns(rel):
        # whoever's rows they are, everyone reading everyone's email is rarely the design
        severity, said = Severity.WARN, (f"{actor} can read every row of {rel.qualified}, with "
                                         f"{', '.join(personal_columns(rel))}: personal data of people other than the reader")
    elif command == "SELECT" and owned is None:
        return Severity.INFO, f"{actor} can read every row of {rel.qualified}: fine for data that is public by design"
    elif command == "SELECT" and owned == "user":
        # other users' rows readable: often the design (public profiles); isolation of a
        # per-user table judges its writes, not its reads
        severity, said = Severity.INFO, (f"{actor} can read {rows} of {rel.qualified}: fine for public profiles, "
                                         "a leak for anything private")
    else:
        severity, said = Severity.ERROR, f"{actor} can {_VERB[command]} {rows} of {rel.qualified}"
        if command in ("UPDATE", "DELETE") and ctx.config.safeupdate and not _select_open(rel, policy):
            # a statement with a WHERE reads the rows, so the SELECT policies apply too; only one
            # without a WHERE gets this policy alone, and safeupdate refuses those through the API
            severity = Severity.WARN
            said += (" with a statement without a WHERE (latent: one with a WHERE also needs the SELECT policies, "
                     "which limit the rows, and safeupdate refuses the others through the API)")
    if not granted:
        return Severity.WARN, (f"{said} once {command} is granted (today anon and authenticated have no {command} "
                               "privilege: one GRANT away)")
    return severity, said


def _fix(ctx: SweepContext, rel: Relation, policy: Policy) -> str:
    """ALTER POLICY with the schema's condition in place of each always-true clause (and in
    the clauses the command takes that the policy lacks)."""
    cond = condition(ctx, rel, command=policy.command if policy.command != "ALL" else None)
    fix = with_comment(cond, alter_policy(rel, policy, cond, keep=lambda label, facts: not (facts.constant_true or facts.every_user)))
    if ctx.whose_rows(rel) is None or (policy.command == "SELECT" and ctx.whose_rows(rel) == "user"):
        fix += "\n-- if every row is meant to be readable by them (public by design), keep the policy and ignore this finding"
    return fix


@rule(RULE, Severity.ERROR, "table", "a policy that lets every row through")
def check(ctx: SweepContext) -> Iterator[Finding]:
    for rel in ctx.tables():
        if not rel.rls_enabled:
            continue
        for policy in rel.policies:
            if not policy.permissive or not (set(policy.roles) & {*API_ROLES, "public"}):
                continue
            constant = [(n, why) for n, t, facts in policy.clauses() if (why := always_true(t, facts))]
            if not constant:
                continue
            clauses = dict(constant)
            commands = ("SELECT", "INSERT", "UPDATE", "DELETE") if policy.command == "ALL" else (policy.command,)
            judged = []
            for command in commands:
                # USING applies to SELECT/UPDATE/DELETE, WITH CHECK to INSERT/UPDATE (or USING without one)
                own = {k: v for k, v in clauses.items()
                       if (k == "USING" and command != "INSERT")
                       or (k == "WITH CHECK" and command in ("INSERT", "UPDATE"))
                       or (k == "USING" and command == "INSERT" and not policy.with_check)}
                if command == "INSERT" and "USING" in own:
                    own = {"WITH CHECK": own.pop("USING")}
                if not own:
                    continue
                verdict = judge(ctx, rel, policy, command, own)
                if verdict is not None:
                    judged.append((command, *verdict))
            if not judged:
                continue
            severity = max(s for _, s, _ in judged)
            worst = [said for _, s, said in judged if s is severity]
            yield Finding(
                RULE,
                severity,
                ref(rel),
                f'Policy "{policy.name}" ({policy.command} TO {", ".join(policy.roles)}) has '
                + " and ".join(f"{n} ({why})" for n, why in constant)
                + ": " + "; ".join(worst) + ".",
                _fix(ctx, rel, policy),
                details={"policy": policy.name, "commands": [c for c, s, _ in judged if s is severity]},
            )
