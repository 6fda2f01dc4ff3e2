"""A generated Supabase project for the cold-start benchmarks (issue 14): 100 migrations,
200 tables, a seed with two tenants. Deterministic: the same arguments write the same bytes.

    supabase/migrations/<timestamp>_<name>.sql   the first creates the tenancy (organizations,
                                                organization_members, private helpers); then
                                                the tenant-scoped tables, a few per file;
                                                the last fifth alters them (columns,
                                                replaced policies, security_invoker views,
                                                jsonb CHECK constraints, indexes built
                                                CONCURRENTLY)
    supabase/seed.sql                           two users in two tenants, a few rows per table
    pyproject.toml                              [tool.rlscheck] principals (the seed's users)

The plugin finds supabase/migrations and supabase/seed.sql by itself (config.py's
defaults): pyproject.toml only names the principals, as a project that configures them does.
"""

from __future__ import annotations

import hashlib
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

__all__ = ["TENANTS", "generate_project"]

#: The first migration's timestamp and the step between two migrations: increasing, fixed.
FIRST_MIGRATION = datetime(2024, 1, 8, 9, 0, 0)
MIGRATION_STEP = timedelta(days=3, hours=7, minutes=13)
#: The share of migrations that alter tables created earlier (the rest create them).
ALTER_SHARE = 5
ROWS_PER_TENANT = 3

AREAS = (
    "billing", "crm", "inventory", "support", "projects", "hr", "marketing", "analytics", "docs", "chat",
    "calendar", "assets", "legal", "sales", "shipping", "forms", "surveys", "learning", "wiki", "events",
    "finance", "payroll", "recruiting", "devices", "fleet", "booking", "catalog", "orders", "returns", "vendors",
    "quality", "safety", "research", "grants", "media", "social", "feedback", "alerts", "audits", "campaigns",
    "contracts", "donations", "energy", "facilities", "labs", "loyalty", "maintenance", "notes", "partners", "quotes",
)
ENTITIES = ("records", "items", "comments", "attachments", "tags")


@dataclass(frozen=True)
class Tenant:
    slug: str
    org: str
    user: str
    email: str


TENANTS = (
    Tenant("acme", "aaaaaaaa-0000-4000-8000-000000000001", "11111111-1111-4111-8111-111111111111", "alice@acme.test"),
    Tenant("globex", "bbbbbbbb-0000-4000-8000-000000000002", "22222222-2222-4222-8222-222222222222", "bob@globex.test"),
)
PRINCIPALS = ("alice", "bob")

TENANCY_SQL = """\
-- Tenancy: organizations are the tenants; users reach them through organization_members.

create table public.organizations (
  id uuid primary key default gen_random_uuid(),
  name text not null,
  slug text not null unique check (slug ~ '^[a-z0-9-]+$'),
  created_at timestamptz not null default now()
);

create table public.organization_members (
  org_id uuid not null references public.organizations (id) on delete cascade,
  user_id uuid not null references auth.users (id) on delete cascade,
  role text not null default 'member' check (role in ('owner', 'admin', 'member')),
  created_at timestamptz not null default now(),
  primary key (org_id, user_id)
);
create index organization_members_user_id_org_id_idx on public.organization_members (user_id, org_id);

-- Policy helpers: SECURITY DEFINER (they read organization_members without its RLS), a
-- fixed empty search_path, in a schema the API does not expose.
create schema if not exists private;
revoke all on schema private from public;
grant usage on schema private to authenticated, service_role;

create or replace function private.user_org_ids()
returns setof uuid
language sql
stable
security definer
set search_path = ''
as $$
  select m.org_id from public.organization_members m where m.user_id = (select auth.uid())
$$;

create or replace function private.user_admin_org_ids()
returns setof uuid
language sql
stable
security definer
set search_path = ''
as $$
  select m.org_id from public.organization_members m
  where m.user_id = (select auth.uid()) and m.role in ('owner', 'admin')
$$;

revoke all on function private.user_org_ids() from public, anon;
revoke all on function private.user_admin_org_ids() from public, anon;
grant execute on function private.user_org_ids() to authenticated, service_role;
grant execute on function private.user_admin_org_ids() to authenticated, service_role;

-- Organizations and memberships are managed by the backend (service_role).
revoke insert, update, delete, truncate on public.organizations, public.organization_members
  from anon, authenticated;

alter table public.organizations enable row level security;
alter table public.organization_members enable row level security;

create policy organizations_select on public.organizations
  for select to authenticated
  using (id in (select private.user_org_ids()));

create policy organization_members_select on public.organization_members
  for select to authenticated
  using (org_id in (select private.user_org_ids()));
"""

HELPER = "org_id in (select private.user_org_ids())"
ADMIN_HELPER = "org_id in (select private.user_admin_org_ids())"


def _subquery(table: str) -> str:
    return (
        "exists (select 1 from public.organization_members m\n"
        f"               where m.org_id = {table}.org_id and m.user_id = (select auth.uid()))"
    )


@dataclass(frozen=True)
class Table:
    index: int
    area: str
    entity: str

    @property
    def name(self) -> str:
        return f"{self.area}_{self.entity}"

    @property
    def parent(self) -> str | None:
        """Every table of an area but its first points at the first (its "records")."""
        return None if self.entity == ENTITIES[0] else f"{self.area}_{ENTITIES[0]}"

    @property
    def read_only(self) -> bool:
        """Every fifth table is a lookup the backend writes: SELECT only for the API."""
        return self.index % 5 == 4

    @property
    def helper_style(self) -> bool:
        return self.index % 2 == 0

    @property
    def tracks_creator(self) -> bool:
        return self.index % 6 == 0


def _tables(count: int) -> list[Table]:
    names = [(area, entity) for area in AREAS for entity in ENTITIES]
    if count > len(names):
        raise ValueError(f"at most {len(names)} tenant-scoped tables")
    return [Table(i, area, entity) for i, (area, entity) in enumerate(names[:count])]


def _using(table: Table) -> str:
    return HELPER if table.helper_style else _subquery(table.name)


def _create_table(table: Table) -> str:
    t = table.name
    columns = [
        "  id uuid primary key default gen_random_uuid()",
        "  org_id uuid not null references public.organizations (id) on delete cascade",
    ]
    if table.parent:
        columns.append("  parent_id uuid not null")
    columns += ["  name text not null", "  metadata jsonb not null default '{}'::jsonb"]
    if table.tracks_creator:
        columns.append("  created_by uuid default auth.uid() references auth.users (id) on delete set null")
    columns.append("  created_at timestamptz not null default now()")
    if table.parent is None:
        columns.append(f"  constraint {t}_id_org_id_key unique (id, org_id)")
    else:  # a child row belongs to its parent's organization
        columns.append(
            f"  constraint {t}_parent_fkey foreign key (parent_id, org_id)\n"
            f"    references public.{table.parent} (id, org_id) on delete cascade"
        )
    if table.index % 4 == 0:
        columns.append(f"  constraint {t}_metadata_is_object check (jsonb_typeof(metadata) = 'object')")
    out = [f"create table public.{t} (\n" + ",\n".join(columns) + "\n);"]
    out.append(f"create index {t}_org_id_created_at_idx on public.{t} (org_id, created_at desc);")
    if table.parent:
        out.append(f"create index {t}_parent_id_org_id_idx on public.{t} (parent_id, org_id);")
    if table.tracks_creator:
        out.append(f"create index {t}_created_by_idx on public.{t} (created_by);")
    out.append(f"alter table public.{t} enable row level security;")
    using = _using(table)
    out.append(f"create policy {t}_select on public.{t}\n  for select to authenticated\n  using ({using});")
    if table.read_only:
        out.append(f"revoke insert, update, delete, truncate on public.{t} from anon, authenticated;")
    else:
        out.append(f"create policy {t}_insert on public.{t}\n  for insert to authenticated\n  with check ({using});")
        out.append(
            f"create policy {t}_update on public.{t}\n  for update to authenticated\n"
            f"  using ({using})\n  with check ({using});"
        )
        delete = ADMIN_HELPER if table.helper_style else using
        out.append(f"create policy {t}_delete on public.{t}\n  for delete to authenticated\n  using ({delete});")
    return "\n".join(out) + "\n"


# -- the later migrations: four kinds of change, in turn ----------------------------------


def _add_columns(table: Table) -> str:
    t = table.name
    return (
        f"alter table public.{t}\n"
        "  add column archived_at timestamptz,\n"
        "  add column status text not null default 'active'\n"
        f"    constraint {t}_status_valid check (status in ('active', 'paused', 'archived'));\n"
        f"create index {t}_org_id_live_idx on public.{t} (org_id) where archived_at is null;\n"
    )


def _replace_policies(table: Table) -> str:
    t = table.name
    if table.read_only:
        return (
            f"drop policy {t}_select on public.{t};\n"
            f"create policy {t}_select on public.{t}\n  for select to authenticated\n  using ({HELPER});\n"
        )
    return (
        f"drop policy {t}_update on public.{t};\n"
        f"create policy {t}_update on public.{t}\n  for update to authenticated\n"
        f"  using ({HELPER})\n  with check ({HELPER});\n"
        f"alter policy {t}_delete on public.{t} using ({ADMIN_HELPER});\n"
    )


def _invoker_view(table: Table) -> str:
    t = table.name
    return (
        f"create view public.{t}_summary\nwith (security_invoker = true)\nas\n"
        f"select org_id, count(*) as row_count, max(created_at) as last_created_at\n"
        f"from public.{t}\ngroup by org_id;\n"
    )


def _validate_metadata(table: Table) -> str:
    t = table.name
    return (
        f"alter table public.{t}\n"
        f"  add constraint {t}_metadata_kind_valid\n"
        "    check (not (metadata ? 'kind') or metadata -> 'kind' in ('\"a\"', '\"b\"', '\"c\"')) not valid;\n"
        f"alter table public.{t} validate constraint {t}_metadata_kind_valid;\n"
        f"create index concurrently if not exists {t}_org_id_name_idx on public.{t} (org_id, name);\n"
    )


ALTERATIONS = (
    ("add_archival_columns", _add_columns),
    ("tighten_write_policies", _replace_policies),
    ("summary_views", _invoker_view),
    ("validate_metadata_kind", _validate_metadata),
)


def _uuid(*parts: object) -> str:
    return str(uuid.UUID(hashlib.md5("-".join(map(str, parts)).encode()).hexdigest()))


def _seed(tables: list[Table]) -> str:
    users = ",\n".join(
        f"  ('{t.user}', '{t.email}', '{{\"full_name\": \"{t.email.split('@')[0].title()}\"}}', "
        "'{\"provider\": \"email\", \"providers\": [\"email\"]}', '2024-01-02 09:00:00+00')"
        for t in TENANTS
    )
    out = [
        "-- Two tenants with one owner each, and a few rows in every table.\n",
        "insert into auth.users (id, email, raw_user_meta_data, raw_app_meta_data, created_at)\nvalues\n"
        + users + ";\n",
        "insert into public.organizations (id, name, slug)\nvalues\n"
        + ",\n".join(f"  ('{t.org}', '{t.slug.title()}', '{t.slug}')" for t in TENANTS) + ";\n",
        "insert into public.organization_members (org_id, user_id, role)\nvalues\n"
        + ",\n".join(f"  ('{t.org}', '{t.user}', 'owner')" for t in TENANTS) + ";\n",
    ]
    for table in tables:
        columns = ["id", "org_id", *(["parent_id"] if table.parent else []), "name", "metadata"]
        rows = []
        for tenant in TENANTS:
            for i in range(ROWS_PER_TENANT):
                values = [f"'{_uuid(table.name, tenant.slug, i)}'", f"'{tenant.org}'"]
                if table.parent:
                    values.append(f"'{_uuid(table.parent, tenant.slug, i)}'")
                kind = "abc"[i % 3]
                values += [f"'{tenant.slug} {table.entity} {i + 1}'", f"'{{\"kind\": \"{kind}\"}}'"]
                rows.append("  (" + ", ".join(values) + ")")
        out.append(f"insert into public.{table.name} ({', '.join(columns)})\nvalues\n" + ",\n".join(rows) + ";\n")
    return "\n".join(out)


def _pyproject() -> str:
    lines = ['[project]\nname = "generated-supabase-app"\nversion = "0.0.0"\n', "[tool.rlscheck]\n"]
    for name, tenant in zip(PRINCIPALS, TENANTS):
        lines.append(f'[tool.rlscheck.principals.{name}]\nsub = "{tenant.user}"\ntenant = "{tenant.org}"\n')
    return "\n".join(lines)


def generate_project(path: Path, migrations: int = 100, tables: int = 200) -> Path:
    """Write the project into ``path`` (created; an existing migrations directory is
    replaced) and return ``path``. ``tables`` counts organizations and organization_members
    too."""
    if migrations < 2 or tables < 3:
        raise ValueError("at least 2 migrations and 3 tables")
    scoped = _tables(tables - 2)
    creating = migrations - 1 - max(1, (migrations - 1) // ALTER_SHARE)  # files after the first that create tables
    altering = migrations - 1 - creating
    bodies: list[tuple[str, str]] = [("init_tenancy", TENANCY_SQL)]
    per_file: list[list[Table]] = [[] for _ in range(creating)]
    for table in scoped:
        per_file[table.index * creating // len(scoped)].append(table)
    for group in per_file:
        names = sorted({t.area for t in group}) or ["nothing"]
        body = "\n".join(_create_table(t) for t in group) or "select 1;\n"
        bodies.append((f"create_{'_'.join(names)}", body))
    for j in range(altering):
        slug, change = ALTERATIONS[j % len(ALTERATIONS)]
        touched = [t for t in scoped if t.index % altering == j]
        if change is _invoker_view:
            touched = [t for t in touched if t.parent is None] or touched[:1]
        body = "\n".join(change(t) for t in touched) or "select 1;\n"
        bodies.append((f"{slug}_{j + 1}", body))

    migrations_dir = path / "supabase" / "migrations"
    if migrations_dir.exists():
        for old in migrations_dir.glob("*.sql"):
            old.unlink()
    migrations_dir.mkdir(parents=True, exist_ok=True)
    for i, (slug, body) in enumerate(bodies):
        stamp = (FIRST_MIGRATION + i * MIGRATION_STEP).strftime("%Y%m%d%H%M%S")
        (migrations_dir / f"{stamp}_{slug}.sql").write_text(body, encoding="utf-8")
    (path / "supabase" / "seed.sql").write_text(_seed(scoped), encoding="utf-8")
    (path / "pyproject.toml").write_text(_pyproject(), encoding="utf-8")
    return path
