-- Functions that take a tenant id or a row's id and run as the caller (SECURITY INVOKER, the
-- default): RLS applies inside them, so called with the other tenant's ids they read nothing
-- of theirs and change nothing. Not a finding.
create function public.org_conversation_ids(p_org_id uuid) returns setof uuid
language sql stable
as $$ select c.id from public.conversations c where c.organization_id = p_org_id $$;

create function public.org_message_total(p_org_id uuid) returns bigint
language sql stable
as $$ select count(*) from public.messages m where m.organization_id = p_org_id $$;

create function public.archive_conversation(p_org_id uuid, p_conversation_id uuid) returns void
language sql
as $$
  update public.conversations set ended_at = now() where organization_id = p_org_id and id = p_conversation_id
$$;

create function public.echo_org(p_org_id uuid) returns uuid
language sql immutable
as $$ select p_org_id $$;
