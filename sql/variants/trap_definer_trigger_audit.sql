-- A SECURITY DEFINER trigger writes an audit row for every new or changed conversation, with
-- the row's own organization: RLS checked that row first (WITH CHECK runs before AFTER
-- triggers), so the audit row is always the user's own tenant's. Not a finding.
create table public.conversation_audit (
  id bigint generated always as identity primary key,
  organization_id uuid not null references public.organizations (id) on delete cascade,
  conversation_id uuid not null,
  action text not null,
  at timestamptz not null default now()
);
create index conversation_audit_organization_id_idx on public.conversation_audit (organization_id);
alter table public.conversation_audit enable row level security;
revoke all on public.conversation_audit from anon;
revoke insert, update, delete, truncate, references, trigger on public.conversation_audit from authenticated;
create policy conversation_audit_select on public.conversation_audit for select to authenticated
  using (organization_id in (select private.get_user_organization_ids((select auth.uid()))));

create function private.audit_conversation() returns trigger
language plpgsql security definer set search_path = ''
as $$
begin
  insert into public.conversation_audit (organization_id, conversation_id, action)
  values (new.organization_id, new.id, lower(tg_op));
  return new;
end
$$;
create trigger conversations_audit after insert or update on public.conversations
  for each row execute function private.audit_conversation();

insert into public.conversation_audit (organization_id, conversation_id, action)
select distinct on (c.organization_id) c.organization_id, c.id, 'insert' from public.conversations c;
