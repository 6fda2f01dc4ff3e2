"""A Supabase project that schedules jobs with pg_cron (stand-in: recorded, never run)."""

from __future__ import annotations

import psycopg
import pytest


def _jobs(rls):
    return dict(rls.fetchall("select jobname, schedule from cron.job order by jobname"))


def test_the_migration_s_jobs_are_recorded(rls):
    assert _jobs(rls) == {"heartbeat": "30 seconds", "nightly": "0 3 * * *", "refresh-stats": "*/15 * * * *"}
    command, active, username, database = rls.fetchone(
        "select command, active, username, database from cron.job where jobname = 'nightly'"
    )
    assert command == "delete from public.sessions where expires_at < now()"
    # recorded as pg_cron records it on Supabase: by postgres, for the database cron.database_name names
    assert active and username == "postgres" and database == "postgres"


def test_pg_cron_is_installed_where_supabase_installs_it(rls):
    assert rls.fetchone("select extversion, extnamespace::regnamespace::text from pg_extension where extname = 'pg_cron'") == (
        "1.6",
        "pg_catalog",
    )


def test_no_job_ever_runs(rls):
    assert rls.scalar("select count(*) from cron.job_run_details") == 0
    assert rls.scalar("select count(*) from cron.job where jobname = 'old-cleanup'") == 0


def test_a_bad_schedule_is_refused_like_pg_cron_does(rls):
    with pytest.raises(psycopg.errors.InvalidParameterValue, match="invalid schedule: every night") as error:
        rls.execute("select cron.schedule('bad', 'every night', 'select 1')")
    assert "interval format '[1-59] seconds'" in error.value.diag.message_hint
    with pytest.raises(psycopg.errors.InvalidParameterValue):
        rls.execute("select cron.schedule('bad', '60 seconds', 'select 1')")


def test_jobs_can_be_altered_and_unscheduled(rls):
    job = rls.scalar("select jobid from cron.job where jobname = 'heartbeat'")
    rls.execute("select cron.alter_job(%s, schedule := '5 seconds', active := false)", (job,))
    assert rls.fetchone("select schedule, active from cron.job where jobid = %s", (job,)) == ("5 seconds", False)
    assert rls.scalar("select cron.unschedule(%s)", (job,)) is True
    with pytest.raises(psycopg.errors.RaiseException, match=f"could not find valid entry for job {job}"):
        rls.execute("select cron.unschedule(%s)", (job,))


def test_api_roles_cannot_reach_cron(rls):
    for role in ("anon", "authenticated"):
        assert not rls.scalar("select has_schema_privilege(%s, 'cron', 'usage')", (role,))
    with rls.as_user("11111111-1111-1111-1111-111111111111"), pytest.raises(psycopg.errors.InsufficientPrivilege):
        rls.execute("select * from cron.job")


def test_cron_job_has_pg_cron_s_row_level_security(rls):
    assert rls.scalar("select relrowsecurity from pg_class where oid = 'cron.job'::regclass")
    assert rls.fetchall("select polname from pg_policy where polrelid = 'cron.job'::regclass") == [("cron_job_policy",)]
    # a role given the schema sees only the jobs it scheduled
    rls.execute("grant usage on schema cron to authenticated")
    with rls.as_user("11111111-1111-1111-1111-111111111111"):
        assert rls.scalar("select count(*) from cron.job") == 0
        rls.execute("select cron.schedule('mine', '0 * * * *', 'select 3')")
        assert rls.fetchall("select jobname, username from cron.job") == [("mine", "authenticated")]
