"""The SQL a finding shows as its fix names objects as PostgreSQL needs them: quoted, so that
it runs as shown whatever the names (capitals, spaces, quotes)."""

from __future__ import annotations

from pytest_rlscheck.sweep import Sweep

AWKWARD = '''
create table public."Team Notes" (id bigint primary key, "Owner Id" uuid, body text);
grant select, insert on public."Team Notes" to anon, authenticated;
create table public."Shared ""Docs""" (id bigint primary key, "Org Id" uuid);
grant select on public."Shared ""Docs""" to authenticated;
alter table public."Shared ""Docs""" enable row level security;
create policy "it's ""everyone""" on public."Shared ""Docs""" for select to authenticated using (true);
'''


def _findings(rls, session):
    rls.execute(AWKWARD)
    sweep = Sweep(session)
    sweep.prepare(rls.connection)
    return {(f.rule, f.object.display): f for r in sweep.run_all(rls) for f in r.findings}


def test_fixes_quote_the_names_and_run_as_shown(rls, rlscheck_session) -> None:
    found = _findings(rls, rlscheck_session)
    fix = found[("rls-disabled", "public.Team Notes")].fix
    assert fix.startswith('ALTER TABLE "public"."Team Notes" ENABLE ROW LEVEL SECURITY;')
    rls.execute(fix)  # the whole fix: the rest is an SQL comment
    assert rls.scalar("select relrowsecurity from pg_class where oid = 'public.\"Team Notes\"'::regclass") is True
    always = found[("policy-always-true", 'public.Shared "Docs"')].fix
    expected = 'ALTER POLICY ' + '"it' + "'" + 's ""everyone"""' + ' ON "public"."Shared ""Docs""" USING'
    assert always.startswith(expected), always
    rls.execute(always.replace("<tenant condition>", 'false'))
    assert rls.scalar(
        "select pg_get_expr(polqual, polrelid) from pg_policy where polname = %s", ['it\'s "everyone"']
    ) == "false"
