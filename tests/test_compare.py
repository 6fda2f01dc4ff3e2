"""--rlscheck-compare's plumbing (pytest_rlscheck.compare): a project's migrations and seed
as they are at a git revision, and a second template built from them on the run's server.

Every test makes a git repository of its own; the session tests start a real server."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from pytest_rlscheck.compare import RevisionSettings, session_at, settings_at
from pytest_rlscheck.config import Settings, load_settings
from pytest_rlscheck.errors import ConfigError, MigrationError, RlscheckError
from pytest_rlscheck.session import RlsSession

MIGRATIONS = "supabase/migrations"
A = f"{MIGRATIONS}/20240101000000_a.sql"
B = f"{MIGRATIONS}/20240102000000_b.sql"
C = f"{MIGRATIONS}/20240103000000_c.sql"
#: The first revision: two migrations, a file the CLI skips, a file that is not SQL, a seed.
FIRST = {
    A: "create table a (id int primary key);\n",
    B: "create table b_old (id int primary key);\ncreate role rlscheck_compare_old_role;\n",
    f"{MIGRATIONS}/notes.sql": "this is not a migration: the CLI skips it\n",
    f"{MIGRATIONS}/README.md": "the migrations\n",
    "supabase/seed.sql": "insert into a values (1);\n",
}
#: The second: A edited, B deleted, C added, the seed edited.
SECOND = {
    A: "create table a (id int primary key, body text);\n",
    C: "create table c_new (id int primary key);\n",
    "supabase/seed.sql": "insert into a values (1, 'one'), (2, 'two');\n",
}


def git(repo: Path, *args: str) -> str:
    env = {**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.com",
           "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@example.com"}
    return subprocess.run(["git", "-C", str(repo), *args], env=env, check=True, capture_output=True, text=True).stdout


def write(repo: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        path = repo / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)


def commit(repo: Path, message: str) -> str:
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", message)
    return git(repo, "rev-parse", "HEAD").strip()


def two_commits(repo: Path, first: dict[str, str], second: dict[str, str]) -> Path:
    """A new repository at ``repo``: ``first`` committed, then ``second`` written over it and committed."""
    repo.mkdir()
    git(repo, "init", "-q")
    write(repo, first)
    commit(repo, "first")
    write(repo, second)
    commit(repo, "second")
    return repo


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """A project with two commits (FIRST, then SECOND), and changes not committed: one staged
    (in A), one not (a new migration)."""
    repo = tmp_path / "project"
    repo.mkdir()
    git(repo, "init", "-q", "-b", "main")
    write(repo, FIRST)
    commit(repo, "first")
    (repo / B).unlink()
    write(repo, SECOND)
    commit(repo, "second")
    (repo / A).write_text(SECOND[A] + "comment on table a is 'staged';\n")
    git(repo, "add", A)
    write(repo, {f"{MIGRATIONS}/20240104000000_d.sql": "create table d_uncommitted (id int);\n"})
    return repo


def settings_of(repo: Path) -> Settings:
    return load_settings(rootdir=repo, invocation_dir=repo, pyproject=None)


def state(repo: Path) -> tuple[str, bytes, str]:
    """git status, the index file's bytes and the files' contents."""
    files = "".join(f"{p}\n{p.read_bytes()!r}\n" for p in sorted(repo.rglob("*")) if p.is_file() and ".git" not in p.parts)
    return git(repo, "status", "--porcelain=v2", "--untracked-files=all"), (repo / ".git" / "index").read_bytes(), files


def test_the_revision_s_migrations_are_the_old_set_with_the_old_bytes(repo: Path, tmp_path: Path) -> None:
    settings = settings_of(repo)
    assert [p.name for p in settings.migrations] == [
        "20240101000000_a.sql", "20240103000000_c.sql", "20240104000000_d.sql"]
    before = state(repo)
    at = settings_at(settings, "HEAD~1", tmp_path / "rev")
    assert state(repo) == before
    assert isinstance(at, RevisionSettings)
    assert at.revision == "HEAD~1" and at.commit == git(repo, "rev-parse", "HEAD~1").strip()
    assert [p.relative_to(tmp_path / "rev").as_posix() for p in at.migrations] == [A, B]
    assert [p.read_text() for p in at.migrations] == [FIRST[A], FIRST[B]]
    assert [(p.name, reason) for p, reason in at.skipped_migrations] == [
        ("notes.sql", 'the file name must match "<timestamp>_name.sql"')]
    assert [p.read_text() for p in at.seed] == [FIRST["supabase/seed.sql"]]
    assert at.sweep == settings.sweep and at.rootdir == settings.rootdir
    assert at.label(at.migrations[0]) == f"HEAD~1:{A}"
    # a sha names it too, and HEAD is the last commit, not the work tree
    head = settings_at(settings, git(repo, "rev-parse", "HEAD").strip(), tmp_path / "head")
    assert [p.read_text() for p in head.migrations] == [SECOND[A], SECOND[C]]


def test_the_legacy_init_file_is_skipped_as_first_entry_at_the_revision(tmp_path: Path) -> None:
    repo = tmp_path / "legacy"
    repo.mkdir()
    git(repo, "init", "-q")
    write(repo, {f"{MIGRATIONS}/20200101000000_init.sql": "select 1;\n", A: FIRST[A]})
    first = commit(repo, "legacy")
    (repo / f"{MIGRATIONS}/20200101000000_init.sql").unlink()
    commit(repo, "gone")
    at = settings_at(settings_of(repo), first, tmp_path / "rev")
    assert [p.name for p in at.migrations] == ["20240101000000_a.sql"]
    assert [p.name for p, _ in at.skipped_migrations] == ["20200101000000_init.sql"]


def test_listed_specs_are_read_at_the_revision(repo: Path, tmp_path: Path) -> None:
    settings = load_settings(rootdir=repo, invocation_dir=repo, pyproject=None,
                             cli_migrations=[f"{MIGRATIONS}/*_[ab].sql", C], cli_seed=["supabase/seed.sql"])
    assert [p.name for p in settings.migrations] == ["20240101000000_a.sql", "20240103000000_c.sql"]
    at = settings_at(settings, "HEAD~1", tmp_path / "rev")
    assert [p.read_text() for p in at.migrations] == [FIRST[A], FIRST[B]]  # C was added since
    assert [p.read_text() for p in at.seed] == [FIRST["supabase/seed.sql"]]
    assert any(repr(C) in note and "does not exist" in note for note in at.notes)


def test_no_migration_directory_at_the_revision_is_an_empty_set_with_a_note(tmp_path: Path) -> None:
    repo = tmp_path / "young"
    repo.mkdir()
    git(repo, "init", "-q")
    write(repo, {"README.md": "nothing yet\n"})
    first = commit(repo, "empty")
    write(repo, {A: FIRST[A]})
    commit(repo, "first migration")
    at = settings_at(settings_of(repo), first, tmp_path / "rev")
    assert at.migrations == () and at.seed == ()
    assert any("'supabase/migrations'" in note and "does not exist" in note for note in at.notes)


def test_a_symlinked_migration_is_the_revision_s_target(tmp_path: Path) -> None:
    repo = tmp_path / "linked"
    repo.mkdir()
    git(repo, "init", "-q")
    write(repo, {"shared/a.sql": "create table linked_old (id int);\n"})
    (repo / MIGRATIONS).mkdir(parents=True)
    os.symlink("../../shared/a.sql", repo / A)
    first = commit(repo, "linked")
    write(repo, {"shared/a.sql": "create table linked_new (id int);\n"})
    commit(repo, "edited")
    at = settings_at(settings_of(repo), first, tmp_path / "rev")
    (path,) = at.migrations
    assert path.name == "20240101000000_a.sql" and path.is_symlink()
    assert path.read_text() == "create table linked_old (id int);\n"


def test_an_unknown_revision_names_it(repo: Path, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="'no-such-branch' names no commit"):
        settings_at(settings_of(repo), "no-such-branch", tmp_path / "rev")
    with pytest.raises(ConfigError, match="is not a git revision"):
        settings_at(settings_of(repo), "--all", tmp_path / "rev")


def test_outside_a_repository_says_so(tmp_path: Path) -> None:
    project = tmp_path / "plain"
    write(project, {A: FIRST[A]})
    with pytest.raises(ConfigError, match="needs a git repository, and .* is not inside one"):
        settings_at(settings_of(project), "HEAD", tmp_path / "rev")


def test_without_git_says_so(repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    with pytest.raises(RlscheckError, match="there is no git on PATH"):
        settings_at(settings_of(repo), "HEAD~1", tmp_path / "rev")


# -- the second template on the same server ---------------------------------------------


@pytest.fixture
def main(repo: Path) -> Iterator[RlsSession]:
    session = RlsSession(settings_of(repo))
    try:
        yield session
    finally:
        session.close()


def _tables(conn) -> set[str]:
    return {name for (name,) in conn.execute(
        "select relname from pg_class where relnamespace = 'public'::regnamespace and relkind = 'r'")}


def _databases(session: RlsSession) -> set[str]:
    with session.server.admin() as conn:
        return {name for (name,) in conn.execute("select datname from pg_database")}


def test_the_revision_s_template_is_built_next_to_the_main_one(main: RlsSession, repo: Path, tmp_path: Path) -> None:
    rev = session_at(main, settings_at(main.settings, "HEAD~1", tmp_path / "rev"))
    try:
        assert _tables(rev.worker_connection()) == {"a", "b_old"}
        assert rev.worker_connection().execute("select count(*) from a").fetchone() == (1,)
        assert _tables(rev.sweep_database().connect()) == {"a", "b_old"}
        with main.server.admin() as conn:
            assert conn.execute("select 1 from pg_roles where rolname = 'rlscheck_compare_old_role'").fetchone()
        assert rev.server is main.server and rev.run_id != main.run_id
        ours = {d for d in _databases(main) if d.startswith(f"rlscheck_{rev.run_id}_")}
        assert {f"rlscheck_{rev.run_id}_template", f"rlscheck_{rev.run_id}_main"} <= ours
    finally:
        rev.close()
    assert not {d for d in _databases(main) if d.startswith(f"rlscheck_{rev.run_id}")}
    with main.server.admin() as conn:  # the role the revision's migration made went with it
        assert conn.execute("select 1 from pg_roles where rolname = 'rlscheck_compare_old_role'").fetchone() is None
    # the main session is untouched, and still works
    conn = main.worker_connection()
    assert _tables(conn) == {"a", "c_new", "d_uncommitted"}
    assert conn.execute("select count(*) from a").fetchone() == (2,)
    assert _tables(main.fresh_database().connect()) == {"a", "c_new", "d_uncommitted"}
    assert f"rlscheck_{main.run_id}_template" in _databases(main)


def test_a_broken_migration_at_the_revision_is_reported_as_the_revision_s(tmp_path: Path) -> None:
    repo = two_commits(tmp_path / "broken", {A: "create table a (id int);\ncreate tabel oops (id int);\n"},
                       {A: "create table a (id int);\n"})
    main = RlsSession(settings_of(repo))
    rev = session_at(main, settings_at(main.settings, "HEAD~1", tmp_path / "rev"))
    try:
        with pytest.raises(MigrationError) as failed:
            rev.template()
        assert failed.value.location.file == f"HEAD~1:{A}"
        assert (failed.value.location.line, failed.value.location.column) == (2, 8)
        assert str(failed.value).startswith(f"HEAD~1:{A}:2:8: ")
        assert _tables(main.worker_connection()) == {"a"}
    finally:
        rev.close()
        main.close()


def test_a_revision_before_the_shim_was_needed_gets_the_main_template_s_core(tmp_path: Path) -> None:
    repo = two_commits(tmp_path / "supabase-later", {A: "create table notes (id int primary key, owner uuid);\n"},
                       {B: "alter table notes enable row level security;\n"
                           "create policy own on notes for all to authenticated using (owner = auth.uid());\n"})
    main = RlsSession(settings_of(repo))
    rev = session_at(main, settings_at(main.settings, "HEAD~1", tmp_path / "rev"))
    try:
        rev.template()
        assert "core" in main.parts and rev.parts == ("core",)
        with main.server.admin() as conn:  # the project's postgres is Supabase's: no superuser
            assert conn.execute("select rolsuper from pg_roles where rolname = %s", [main.owner]).fetchone() == (False,)
        assert _tables(rev.worker_connection()) == {"notes"}
    finally:
        rev.close()
    try:
        conn = main.worker_connection()
        assert conn.execute("select count(*) from pg_policies where policyname = 'own'").fetchone() == (1,)
    finally:
        main.close()
