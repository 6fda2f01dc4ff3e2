-- Two tenants with one user each, sized like a real deployment:
-- 2,132 conversations and 5,998 messages in all.
--
--   Acme   (aaaaaaaa-0000-0000-0000-000000000001): alice, 3 domains, 1,200 conversations, 3,400 messages
--   Globex (bbbbbbbb-0000-0000-0000-000000000002): bob,   2 domains,   932 conversations, 2,598 messages
--
-- Keys are derived with md5() so that every run produces the same rows.

insert into auth.users (id, email, raw_user_meta_data, raw_app_meta_data, created_at)
values
  ('11111111-1111-1111-1111-111111111111', 'alice@acme.test',
   '{"full_name": "Alice Archer"}', '{"provider": "email", "providers": ["email"]}', '2024-01-02 09:00:00+00'),
  ('22222222-2222-2222-2222-222222222222', 'bob@globex.test',
   '{"full_name": "Bob Baker"}', '{"provider": "email", "providers": ["email"]}', '2024-01-03 09:00:00+00');

insert into public.organizations (id, name, created_at)
values
  ('aaaaaaaa-0000-0000-0000-000000000001', 'Acme', '2024-01-02 09:00:00+00'),
  ('bbbbbbbb-0000-0000-0000-000000000002', 'Globex', '2024-01-03 09:00:00+00');

insert into public.organization_members (organization_id, user_id, role)
values
  ('aaaaaaaa-0000-0000-0000-000000000001', '11111111-1111-1111-1111-111111111111', 'owner'),
  ('bbbbbbbb-0000-0000-0000-000000000002', '22222222-2222-2222-2222-222222222222', 'owner');

insert into public.domains (id, organization_id, hostname)
select md5('domain-' || t.slug || '-' || i)::uuid, t.org, t.slug || '-' || i || '.example.com'
from (values
        ('acme', 'aaaaaaaa-0000-0000-0000-000000000001'::uuid, 3),
        ('globex', 'bbbbbbbb-0000-0000-0000-000000000002'::uuid, 2)
     ) as t(slug, org, domains),
     generate_series(1, t.domains) as i;

-- Conversations spread over 90 days, cycling through statuses and languages (few are still open; Japanese is rare).
insert into public.conversations (id, domain_id, organization_id, visitor_id, started_at, ended_at, metadata)
select
  md5('conversation-' || t.slug || '-' || i)::uuid,
  md5('domain-' || t.slug || '-' || (i % t.domains + 1))::uuid,
  t.org,
  'visitor-' || (i % 97),
  timestamptz '2024-03-01 00:00:00+00' + (i * 61 % 129600) * interval '1 minute',
  case when i % 4 <> 0
       then timestamptz '2024-03-01 00:00:00+00' + (i * 61 % 129600) * interval '1 minute' + interval '20 minutes'
  end,
  jsonb_build_object(
    'status', case when i % 31 = 0 then 'waiting' when i % 17 = 0 then 'active'
                   when i % 3 = 0 then 'resolved' else 'closed' end,
    'language', case when i % 50 = 0 then 'ja' else (array['en', 'de', 'fr', 'es', 'pt-BR'])[i % 5 + 1] end,
    'channel', (array['widget', 'email'])[i % 2 + 1]
  )
from (values
        ('acme', 'aaaaaaaa-0000-0000-0000-000000000001'::uuid, 3, 1200),
        ('globex', 'bbbbbbbb-0000-0000-0000-000000000002'::uuid, 2, 932)
     ) as t(slug, org, domains, conversations),
     generate_series(1, t.conversations) as i;

-- Messages: alternating visitor and assistant turns, a minute apart.
insert into public.messages (id, conversation_id, organization_id, role, content, created_at, metadata)
select
  md5('message-' || t.slug || '-' || i)::uuid,
  c.id,
  t.org,
  case when i % 2 = 0 then 'assistant' else 'user' end,
  case when i % 2 = 0 then 'Happy to help with request #' || i else 'Question #' || i || ' about my order' end,
  c.started_at + (i / t.conversations) * interval '1 minute' + interval '5 seconds',
  case when i % 2 = 0
       then jsonb_build_object('response_time_ms', 200 + (i * 37) % 4800,
                               'sentiment', (array['positive', 'neutral', 'negative'])[i % 3 + 1])
       else jsonb_build_object('sentiment', (array['positive', 'neutral', 'negative'])[i % 3 + 1])
  end
from (values
        ('acme', 'aaaaaaaa-0000-0000-0000-000000000001'::uuid, 1200, 3400),
        ('globex', 'bbbbbbbb-0000-0000-0000-000000000002'::uuid, 932, 2598)
     ) as t(slug, org, conversations, messages),
     generate_series(1, t.messages) as i,
     public.conversations c
where c.id = md5('conversation-' || t.slug || '-' || (i % t.conversations + 1))::uuid;

analyze public.organizations, public.organization_members, public.domains, public.conversations, public.messages;
