insert into auth.users (id, email) values
  ('11111111-1111-1111-1111-111111111111', 'alice@example.com'),
  ('22222222-2222-2222-2222-222222222222', 'bob@example.com');
insert into public.documents (owner_id, content, embedding) values
  ('11111111-1111-1111-1111-111111111111', 'alice: cats', '[1,0,0]'),
  ('11111111-1111-1111-1111-111111111111', 'alice: dogs', '[0,1,0]'),
  ('22222222-2222-2222-2222-222222222222', 'bob: cats', '[0.9,0.1,0]');
