"""The SQL of the fixes the sweep prints: statements that run as shown, with SQL comments
(``-- ...``) for the alternatives and the explanations.

A policy fix needs a condition. It is never a placeholder: it is read from the schema —

* for a per-user table (the owner column is the user's id): ``"col" = (SELECT auth.uid())``;
* for a tenant column: the condition the schema already writes for it, as PostgreSQL printed
  it — a clause of another policy on the same table that limits that column, or of a policy
  on another table that limits a column of the same name (and reads no column ours lacks);
* failing that, ``false`` (deny every row: valid and safe), with a comment saying that
  nothing narrower could be read from the schema and what to write in its place.

The clauses follow the command: an INSERT policy takes only WITH CHECK, SELECT and DELETE
only USING, UPDATE and ALL both.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from .catalog import Policy, Relation, quote
from .policy_model import ExprFacts
from .sqlsplit import tokens
from .tenancy import TenantKey

__all__ = [
    "Condition",
    "alter_policy",
    "clauses",
    "condition",
    "create_policy",
    "key_limits",
    "limits_column",
    "policy_name",
    "roles_sql",
    "with_comment",
]

USER = "(SELECT auth.uid())"
COMMANDS = ("SELECT", "INSERT", "UPDATE", "DELETE")


@dataclass(frozen=True)
class Condition:
    """A condition for a policy clause, and where it comes from (an SQL comment)."""

    sql: str
    comment: str
    found: bool = True  # False: the deny-all fallback


def limits_column(facts: ExprFacts, column: str) -> bool:
    """The expression limits the row's ``column``: compares it with the caller or a set of
    tenants, or passes it to a function (``is_member(organization_id)``)."""
    return column in facts.filter_columns() or any(column in call.row_columns for call in facts.calls)


def key_limits(key: TenantKey | None, facts: ExprFacts) -> bool:
    """The expression limits the tenant key."""
    if key is None:
        return False
    if key.column:
        if key.per_user:
            return key.column in facts.compared_with_user()
        return limits_column(facts, key.column)
    expression = key.expression or ""
    return expression in facts.caller_expressions or expression in facts.set_expressions


def _usable(facts: ExprFacts, *, per_row: bool) -> bool:
    """Worth copying: not true for everyone, not trusting user_metadata, and (unless
    ``per_row``) no call that takes the row's columns and so runs once per row."""
    if facts.constant_true or facts.every_user or facts.reads_user_metadata:
        return False
    return per_row or not any(not c.once and c.row_arguments for c in facts.calls)


def _portable(text: str, source: Relation, target: Relation) -> bool:
    """``text``, written for ``source``, means the same on ``target``: every column of
    ``source`` it names unqualified exists in ``target``, and it never names ``source``."""
    code = [(k, s, e) for k, s, e in tokens(text) if k not in ("space", "comment", "block")]
    own = {c.name for c in source.columns}
    theirs = {c.name for c in target.columns}
    for i, (kind, start, end) in enumerate(code):
        if kind == "word":
            name = text[start:end].lower()
        elif kind == "quoted":
            name = text[start + 1 : end - 1].replace('""', '"')
        else:
            continue
        before = text[code[i - 1][1] : code[i - 1][2]] if i else ""
        after = text[code[i + 1][1] : code[i + 1][2]] if i + 1 < len(code) else ""
        if after == "." and name in (source.name, source.qualified):
            return False
        if before == "." or after in ("(", "."):
            continue
        if name in own and name not in theirs:
            return False
    return True


def _search(relations: Iterable[Relation], rel: Relation, test: Callable[[ExprFacts], bool], *, per_row: bool,
            command: str | None = None) -> tuple[Relation, Policy, str] | None:
    for other in relations:
        for policy in sorted(other.policies, key=lambda p: command is not None and not p.covers(command)):
            if not policy.permissive:
                continue
            for _label, text, facts in sorted(policy.clauses(), key=lambda c: c[0] != "USING"):
                if test(facts) and _usable(facts, per_row=per_row) and (other.oid == rel.oid or _portable(text, other, rel)):
                    return other, policy, text
    return None


def condition(ctx: object, rel: Relation, *, column: str | None = None, per_row: bool = True,
              key: TenantKey | None = None, tables: Sequence[Relation] | None = None, command: str | None = None
              ) -> Condition:
    """The condition that limits ``rel``'s rows to the caller (see the module's docstring).
    ``ctx``: the sweep's context (its tables and tenant keys); ``column``: the column to limit
    (default: the tenant key's); ``key``: the tenant key, when known; ``tables``: where to look
    (default: the context's tables); ``per_row``: a condition that calls a function per row
    may be reused (not for the fix of a per-row call); ``command``: prefer the policies of that
    command."""
    if key is None and column is None:
        key = ctx.tenant_key(rel)  # type: ignore[attr-defined]
        if key is None:  # a column that points at auth.users holds the owner
            owner = next((fk.columns[0] for fk in rel.foreign_keys() if fk.to_auth_users and len(fk.columns) == 1), None)
            key = TenantKey(owner, per_user=True) if owner else None
    if column is not None:
        key = TenantKey(column)
    if key is not None and key.per_user and key.column:
        owner = rel.column(key.column)
        typed = USER if owner is None or owner.type == "uuid" else f"{USER}::{owner.type}"  # owner_id text: cast
        return Condition(f"{quote(key.column)} = {typed}",
                         f"-- {quote(key.column)} holds the owning user's id: the caller's rows only")
    if key is not None:
        every = list(tables) if tables is not None else list(ctx.tables())  # type: ignore[attr-defined]
        candidates = [rel, *(r for r in every if r.oid != rel.oid and (not key.column or r.column(key.column)))]
        found = _search(candidates, rel, lambda facts: key_limits(key, facts), per_row=per_row, command=command)
        if found is not None:
            other, policy, text = found
            where = "" if other.oid == rel.oid else f" on {other.shown}"
            return Condition(text, f"-- the condition of policy {quote(policy.name)}{where}, as PostgreSQL prints it")
    what = key.describe() if key is not None else "the row's owner or tenant"
    return Condition(
        "false",
        f"-- nothing narrower could be read from the schema: false lets no row through (safe). Write in its place "
        f"the condition that limits {what} to the caller's own rows or tenants",
        found=False,
    )


ANON = Condition("false", "")


def clauses(command: str, using: str | None, check: str | None) -> str:
    """The clauses a policy for ``command`` takes: INSERT WITH CHECK only, SELECT and DELETE
    USING only, UPDATE and ALL both."""
    parts = []
    if command != "INSERT":
        parts.append(f"USING ({using if using is not None else check})")
    if command in ("INSERT", "UPDATE", "ALL"):
        parts.append(f"WITH CHECK ({check if check is not None else using})")
    return " ".join(parts)


def alter_policy(rel: Relation, policy: Policy, cond: Condition, keep: Callable[[str, ExprFacts], bool] | None = None,
                 *, narrow: bool = False) -> str:
    """``ALTER POLICY`` that puts ``cond`` in each clause the policy's command takes, except
    the existing clauses ``keep`` accepts (by label and facts). ``narrow``: a clause that is
    not true for everyone keeps its condition, ANDed with ``cond`` (the fix only narrows)."""
    def clause(label: str, text: str | None, facts: ExprFacts) -> str:
        if text and keep is not None and keep(label, facts):
            return text
        if narrow and text and cond.sql != "false" and not (facts.constant_true or facts.every_user):
            return f"({text}) AND ({cond.sql})"
        return cond.sql

    using = clause("USING", policy.using, policy.using_facts)
    if policy.with_check:
        check = clause("WITH CHECK", policy.with_check, policy.check_facts)
    else:  # PostgreSQL checks new rows with the USING
        check = clause("WITH CHECK", policy.using, policy.using_facts)
    return f"ALTER POLICY {quote(policy.name)} ON {rel.shown} {clauses(policy.command, using, check)};"


def policy_name(rel: Relation, wanted: str, taken: Sequence[str] = ()) -> str:
    """A policy name not yet used on ``rel`` (nor in ``taken``), quoted."""
    used = {p.name for p in rel.policies} | set(taken)
    name, n = wanted, 2
    while name in used:
        name, n = f"{wanted}_{n}", n + 1
    return quote(name)


def create_policy(rel: Relation, command: str, role: str, cond: Condition, name: str | None = None) -> str:
    """``CREATE POLICY`` for ``command`` to ``role`` with ``cond`` in the clauses it takes."""
    name = name or policy_name(rel, f"{rel.name}_{command.lower()}")
    return f"CREATE POLICY {name} ON {rel.shown} FOR {command} TO {roles_sql([role])} {clauses(command, cond.sql, cond.sql)};"


def roles_sql(roles: Iterable[str]) -> str:
    """Roles as a policy's TO lists them (``public`` is the keyword PUBLIC, not a role)."""
    return ", ".join("PUBLIC" if r == "public" else quote(r) for r in roles)


def with_comment(cond: Condition, statement: str) -> str:
    """The statement, preceded by where its condition comes from."""
    return f"{cond.comment}\n{statement}" if cond.comment else statement


def _or(texts: Sequence[str | None]) -> str:
    parts = list(dict.fromkeys(f"({t})" if t else "false" for t in texts))
    return " OR ".join(parts)


def merge_permissive(rel: Relation, command: str, policies: Sequence[Policy], roles: Sequence[str]) -> str:
    """One permissive policy for ``command`` and ``roles`` in place of ``policies`` (all of
    which apply to those roles): their conditions ORed, as PostgreSQL ORs them. A policy FOR
    ALL keeps its other commands in policies of their own; one for more roles keeps them."""
    api = ("anon", "authenticated")
    group = set(roles)
    lines: list[str] = []
    taken: list[str] = []

    def others_of(policy: Policy) -> list[str]:
        """The roles besides the group's the policy applies to (PUBLIC: the other API roles)."""
        if "public" in policy.roles:
            return [r for r in api if r not in group]
        return [r for r in policy.roles if r not in group]

    exact = [p for p in policies if p.command == command and not others_of(p)]
    target = exact[0] if exact else None
    for policy in policies:
        if policy is target:
            continue
        rest = others_of(policy)
        if policy.command == "ALL":  # keep what it does for the other commands
            for other in (c for c in COMMANDS if c != command):
                name = policy_name(rel, f"{policy.name}_{other.lower()}", taken)
                taken.append(name)
                lines.append(f"CREATE POLICY {name} ON {rel.shown} FOR {other} TO {roles_sql(policy.roles)} "
                             f"{clauses(other, policy.using or 'false', policy.with_check or policy.using or 'false')};")
            if rest:  # and for the roles outside the group, this command too
                name = policy_name(rel, f"{policy.name}_{command.lower()}", taken)
                taken.append(name)
                lines.append(f"CREATE POLICY {name} ON {rel.shown} FOR {command} TO {roles_sql(rest)} "
                             f"{clauses(command, policy.using or 'false', policy.with_check or policy.using or 'false')};")
            lines.append(f"DROP POLICY {quote(policy.name)} ON {rel.shown};")
        elif rest:
            lines.append(f"ALTER POLICY {quote(policy.name)} ON {rel.shown} TO {roles_sql(rest)};  -- the merged policy covers {roles_sql(sorted(group))}")
        else:
            lines.append(f"DROP POLICY {quote(policy.name)} ON {rel.shown};")
    using = _or([p.using for p in policies])
    check = _or([p.with_check or p.using for p in policies])
    merged = clauses(command, using, check)
    if target is not None:
        lines.append(f"ALTER POLICY {quote(target.name)} ON {rel.shown} {merged};")
    else:
        name = policy_name(rel, f"{rel.name}_{command.lower()}", taken)
        lines.append(f"CREATE POLICY {name} ON {rel.shown} FOR {command} TO {roles_sql(sorted(group))} {merged};")
    return "\n".join(lines)


def metadata_free(text: str | None) -> str | None:
    """``text`` reading app_metadata where it reads user_metadata (the JWT's claim, or
    auth.users' raw_user_meta_data): the same shape, from what only the service role writes."""
    if text is None:
        return None
    out, last = [], 0
    for kind, start, end in tokens(text):
        piece = text[start:end]
        if kind == "string" and piece == "'user_metadata'":
            out.append(text[last:start] + "'app_metadata'")
            last = end
        elif kind in ("word", "quoted") and piece.strip('"').lower() == "raw_user_meta_data":
            out.append(text[last:start] + "raw_app_meta_data")
            last = end
    return "".join(out) + text[last:]


#: The commands whose policies decide each family of isolation operation.
_FAMILY_COMMANDS = {"select": ("SELECT",), "insert": ("INSERT",), "update": ("UPDATE",), "move": ("UPDATE",),
                    "delete": ("DELETE",), "upsert": ("INSERT", "UPDATE")}
_LABELS = {"SELECT": ("USING",), "DELETE": ("USING",), "INSERT": ("WITH CHECK",), "UPDATE": ("USING", "WITH CHECK")}


def _clause_of(policy: Policy, label: str) -> ExprFacts | None:
    """The facts of the clause that decides ``label`` (a missing WITH CHECK is the USING)."""
    if label == "WITH CHECK" and policy.with_check:
        return policy.check_facts
    if policy.using:
        return policy.using_facts
    return None


def unlimited(rel: Relation, key: TenantKey | None, commands: Iterable[str], roles: Iterable[str], *,
              anon: bool = False) -> list[Policy]:
    """The permissive policies of ``rel`` for ``commands`` and ``roles`` (PUBLIC counts) that
    do not limit the tenant key in a clause those commands use; with ``anon`` (anon reached
    tenants' rows), every policy for anon alone too (anon has no tenant: whatever such a
    policy admits is none of its rows)."""
    roles = {*roles, "public"}
    commands = list(commands)
    found = []
    for policy in rel.policies:
        if not policy.permissive or not set(policy.roles) & roles:
            continue
        labels = {label for c in commands if policy.covers(c) for label in _LABELS[c]}
        if anon and labels and _anon_only(policy):
            found.append(policy)
        elif any((facts := _clause_of(policy, label)) is None or not key_limits(key, facts) for label in labels):
            found.append(policy)
    return found


def _anon_only(policy: Policy) -> bool:
    return set(policy.roles) <= {"anon"}


def policies_fix(ctx: object, rel: Relation, key: TenantKey | None, commands: Iterable[str],
                 roles: Iterable[str] = ("anon", "authenticated"), *, anon: bool = False,
                 policies: Sequence[Policy] | None = None) -> list[str]:
    """ALTER POLICY for each policy of ``commands`` that does not limit ``key`` (or each of
    ``policies``): the schema's condition in its clauses that do not (with where the
    condition comes from, once); a policy for anon alone gets false."""
    commands = list(commands)
    if policies is None:
        policies = unlimited(rel, key, commands, roles, anon=anon)
    if not policies:
        return []
    cond = condition(ctx, rel, key=key, command=commands[0] if commands else None) if key is not None else condition(ctx, rel)
    lines = [cond.comment] if cond.comment and not all(_anon_only(p) for p in policies) else []
    for policy in policies:
        if _anon_only(policy):  # anon has no user and no tenant: none of a tenant's rows is its
            lines.append(f"-- {quote(policy.name)} is for anon, which has no tenant: it admits none of their rows")
            lines.append(alter_policy(rel, policy, ANON))
        else:
            lines.append(alter_policy(rel, policy, cond, keep=lambda label, facts: key_limits(key, facts), narrow=True))
    return lines


def isolation_fix(ctx: object, rel: Relation, key: TenantKey, families: Iterable[str], *, anon: bool,
                  unfiltered: bool) -> str:
    """The fix of a tenant-leak on a table: the policies of the leaking commands that do not
    limit the tenant key, altered to."""
    commands = list(dict.fromkeys(c for f in families for c in _FAMILY_COMMANDS.get(f, ())))
    lines = policies_fix(ctx, rel, key, commands, anon=anon)
    if not lines:
        cond = condition(ctx, rel, key=key, command=commands[0] if commands else None)
        covering = [p for p in rel.policies if p.permissive and any(p.covers(c) for c in commands)
                    and cond.sql not in (p.using, p.with_check)]
        lines = [f"-- every policy of {', '.join(commands)} names {key.describe()}, yet the other tenant's rows were "
                 "reached: its condition (or a function it calls) does not limit it to the caller's tenants. In its place:"]
        lines += policies_fix(ctx, rel, key, commands, policies=covering)
    if unfiltered:
        lines.append("-- (an UPDATE or DELETE without a WHERE gets only the UPDATE/DELETE policies, not the SELECT "
                     "ones: they must limit the rows themselves)")
    if anon:
        lines.append("-- (anon: (SELECT auth.uid()) is null for the anon key, so a condition on it admits no tenant's rows)")
    return "\n".join(line for line in lines if line)


def read_fix(ctx: object, relations: Iterable[Relation]) -> list[str]:
    """ALTER POLICY for the SELECT policies of ``relations`` that do not limit their tenant key."""
    lines: list[str] = []
    for rel in relations:
        if rel.rls_enabled:
            lines += policies_fix(ctx, rel, ctx.tenant_key(rel), ("SELECT",))  # type: ignore[attr-defined]
    return lines
