insert into auth.users (id, email) values
  ('11111111-1111-1111-1111-111111111111', 'alice@example.com'),
  ('22222222-2222-2222-2222-222222222222', 'bob@example.com');

insert into public.orders (customer_id, total_cents) values
  ('22222222-2222-2222-2222-222222222222', 1999);
