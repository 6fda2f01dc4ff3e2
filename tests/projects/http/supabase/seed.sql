insert into auth.users (id, email) values ('11111111-1111-1111-1111-111111111111', 'alice@example.com');
insert into public.cities (name, owner_id) values ('Oslo', '11111111-1111-1111-1111-111111111111');
